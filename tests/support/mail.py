"""Read what the SMTP sink received the way a mail client would."""

from __future__ import annotations

import re
from email.message import EmailMessage
from html.parser import HTMLParser

URL = re.compile(r"https?://[^\s<>()\"']+")


def parts(message: EmailMessage) -> tuple[str, str]:
    """(text/plain, text/html) of a multipart/alternative message, decoded."""
    assert message.get_content_type() == "multipart/alternative", message.get_content_type()
    subparts = list(message.iter_parts())
    assert [p.get_content_type() for p in subparts] == ["text/plain", "text/html"]
    return tuple(p.get_content().replace("\r\n", "\n") for p in subparts)  # type: ignore[return-value]


def flat(text: str) -> str:
    """Text with line wrapping undone, to look for phrases."""
    return " ".join(text.split())


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.words: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "title", "head"):
            self._skip += 1
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.links.append(href)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title", "head"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.words.extend(data.split())


def html_links(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.links


def html_words(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.words


def text_links(text: str) -> list[str]:
    """URLs in plain text, without the sentence's closing punctuation."""
    return [url.rstrip(".,;:!?") for url in URL.findall(text)]


def link_to(message: EmailMessage, path_part: str) -> str:
    """The one link in the text part whose URL contains `path_part`."""
    text, _ = parts(message)
    found = [u for u in text_links(text) if path_part in u]
    assert len(found) == 1, f"expected one {path_part} link, found {found}"
    return found[0]


def wire_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n")
