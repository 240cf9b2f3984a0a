"""Links to an announcement's documents as its email shows them: plain values and the Markdown section (issue 9).

mailer.announcements.documents stores the files and makes these links; the mail only renders them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class DocumentLink:
    """What an email or page needs to link one document: plain values (the engine carries these)."""

    title: str
    label: str
    size_bytes: int
    path: str  # /documents/<public id>/<file name>

    @property
    def text(self) -> str:
        return f"{self.title} ({self.label}, {human_size(self.size_bytes)})"


def human_size(size: int) -> str:
    """240 KB, 1.4 MB: rounded the way a reader expects."""
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def markdown_section(links: Iterable[DocumentLink], base_url: str) -> str:
    """The "Documents" section appended to an announcement's Markdown at render time."""
    items = [f"- [{_escape_markdown(link.text)}]({base_url}{_url_path(link.path)})" for link in links]
    return "\n\n## Documents\n\n" + "\n".join(items) + "\n" if items else ""


def _url_path(path: str) -> str:
    return quote(path, safe="/-_.~")


def _escape_markdown(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]()<>#+!|~&])", r"\\\1", text)
