"""Nothing unfinished goes out (V2, issue 18): what in a draft looks unfinished, line by line.

A plain function of the text: template gaps left in square brackets (`[your name]`, but not a
Markdown link `[text](url)`), an empty subject or message, a link that goes nowhere (`](`,
`http://` with no host), a link to the example domains, a personal field written wrongly, and a
link to one of our documents that has been removed. The edit page, the check page and the test
send all show the same list, and sending is refused while it is not empty.

Brackets that are meant (a group called "[Local Offer]") can be confirmed on the check page; the
confirmed texts are kept with the announcement, so a bracket added later is still caught."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.errors import InvalidInput
from mailer.mail.personal_fields import check_placeholders
from mailer.models import Announcement, Document

# `[words]` not part of a link: not `[text](url)`, not `[text][ref]` or its `[ref]`, not a `[ref]: url` line,
# not an image, not a task-list box `[ ]`/`[x]`.
_BRACKETS = re.compile(r"(?<![\\\]!])\[([^\[\]\n]+)\](?![(\[:])")
_MARKDOWN_TARGET = re.compile(r"\]\(\s*<?([^)\s>]*)")
_BARE_URL = re.compile(r"(?<![(<\w])(https?://[^\s)<>\]]*)")
_DOCUMENT_PATH = re.compile(r"/documents/([A-Za-z0-9_-]+)/")
_EXAMPLE_DOMAINS = ("example.org", "example.com", "example.net")

BRACKETS, EMPTY, LINK, EXAMPLE, FIELD, DOCUMENT = "brackets", "empty", "link", "example", "field", "document"


@dataclass(frozen=True)
class Gap:
    """One unfinished thing: `line` is the message's line number (None: the subject), `found` the text."""

    kind: str
    line: int | None
    found: str
    message: str

    @property
    def where(self) -> str:
        return "Subject" if self.line is None else f"Line {self.line}"


def find_gaps(
    subject: str,
    body: str,
    *,
    meant_brackets: Iterable[str] = (),
    existing_documents: Iterable[str] = (),
) -> list[Gap]:
    """Everything that looks unfinished, subject first, then the message by line.

    `meant_brackets` are bracket texts (with their brackets) an admin confirmed; `existing_documents`
    the public ids of documents that still exist (a link to any other /documents/<id>/ is a gap)."""
    meant, documents = set(meant_brackets), set(existing_documents)
    gaps: list[Gap] = []
    if not subject.strip():
        gaps.append(Gap(EMPTY, None, "", "The subject is empty. Say what the email is about."))
    if not body.strip():
        gaps.append(Gap(EMPTY, 1, "", "The message is empty. Write the announcement."))
    lines = [(None, subject), *enumerate(body.replace("\r\n", "\n").split("\n"), start=1)]
    for number, line in lines:
        gaps.extend(_line_gaps(number, line, meant, documents))
    return gaps


def bracket_texts(gaps: Iterable[Gap]) -> list[str]:
    """The distinct bracket texts among `gaps`, in order: what "These brackets are meant to be there" confirms."""
    return list(dict.fromkeys(g.found for g in gaps if g.kind == BRACKETS))


def only_brackets(gaps: Iterable[Gap]) -> bool:
    found = list(gaps)
    return bool(found) and all(g.kind == BRACKETS for g in found)


def _line_gaps(number: int | None, line: str, meant: set[str], documents: set[str]) -> list[Gap]:
    gaps: list[Gap] = []
    for match in _BRACKETS.finditer(line):
        if match.group(1).strip().lower() not in ("", "x") and match.group(0) not in meant:
            gaps.append(Gap(
                BRACKETS, number, match.group(0),
                f"{match.group(0)} looks like a gap left to fill in. Write what it asks for, or, if the "
                "brackets are meant to be there, say so on the check page.",
            ))
    targets = [m.group(1) for m in _MARKDOWN_TARGET.finditer(line)] + [m.group(1) for m in _BARE_URL.finditer(line)]
    for target in targets:
        gap = _link_gap(number, target, documents)
        if gap is not None:
            gaps.append(gap)
    try:
        check_placeholders(line, field="subject" if number is None else "body")
    except InvalidInput as exc:
        message = str(exc).removeprefix(f"Line {number}: ").removeprefix("In the subject: ")
        gaps.append(Gap(FIELD, number, "", message[:1].upper() + message[1:]))
    return gaps


def _link_gap(number: int | None, target: str, documents: set[str]) -> Gap | None:
    if not target or target == "#":
        return Gap(LINK, number, "](", "A link goes nowhere: put the web address in the round brackets.")
    parts = urlsplit(target)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        host = (parts.hostname or "").lower()
        if not host or "." not in host:
            return Gap(LINK, number, target, f"The link {target} has no website address after {scheme}://.")
        if any(host == d or host.endswith("." + d) for d in _EXAMPLE_DOMAINS):
            return Gap(EXAMPLE, number, target,
                       f"The link {target} goes to an example address. Put in the real link.")
    elif not scheme:  # other schemes (javascript: ...) are the sanitiser's business
        return Gap(LINK, number, target,
                   f"The link {target} is not a full web address: start it with https://.")
    document = _DOCUMENT_PATH.search(parts.path or "") if scheme in ("http", "https") else None
    if document is not None and document.group(1) not in documents:
        return Gap(DOCUMENT, number, target,
                   f"The link {target} is to a document that has been removed. Attach it again and use its new link.")
    return None


def announcement_gaps(session: Session, announcement: Announcement) -> list[Gap]:
    """find_gaps for a saved announcement: its confirmed brackets, and the documents that exist now."""
    return draft_gaps(session, announcement.subject, announcement.body_markdown,
                      meant_brackets=meant_brackets(announcement))


def draft_gaps(session: Session, subject: str, body: str, *, meant_brackets: Iterable[str] = ()) -> list[Gap]:
    """find_gaps for text not yet saved (the edit page): the documents linked are looked up."""
    linked = {m.group(1) for m in _DOCUMENT_PATH.finditer(body)}
    existing: set[str] = set()
    if linked:
        existing = set(session.scalars(select(Document.public_id).where(Document.public_id.in_(linked))))
    return find_gaps(subject, body, meant_brackets=meant_brackets, existing_documents=existing)


def meant_brackets(announcement: Announcement) -> list[str]:
    return [line for line in (announcement.meant_brackets or "").split("\n") if line]


def confirm_brackets(announcement: Announcement, texts: Iterable[str]) -> None:
    """Remember that these bracket texts are meant (the check page's "These brackets are meant to be there")."""
    announcement.meant_brackets = "\n".join(dict.fromkeys([*meant_brackets(announcement), *texts]))


__all__ = [
    "BRACKETS", "DOCUMENT", "EMPTY", "EXAMPLE", "FIELD", "LINK", "Gap", "announcement_gaps", "bracket_texts",
    "confirm_brackets", "draft_gaps", "find_gaps", "meant_brackets", "only_brackets",
]
