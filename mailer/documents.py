"""Hosted documents (issue 9): a letter shared as a link on the forum's own site, not as an attachment.

An upload is checked by its content, not its name (a PDF starts with %PDF-; DOCX and ODT are
zip files that say what they are inside), stored under a random name, and served at a
stable public URL with a safe version of its original name. The email links to it with its
type and size in the link text ("Council letter (PDF, 240 KB)")."""

from __future__ import annotations

import re
import secrets
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from .announcements import EDITABLE, _require
from .clock import Clock
from .errors import InvalidInput
from .models import Announcement, Document

MAX_TITLE_LENGTH = 200
MAX_NAME_LENGTH = 120
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class DocumentKind:
    label: str  # shown in link text: "PDF"
    extension: str
    content_type: str
    inline: bool  # shown in the browser rather than downloaded


PDF = DocumentKind("PDF", "pdf", "application/pdf", True)
DOCX = DocumentKind(
    "Word document", "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", False
)
ODT = DocumentKind("OpenDocument text", "odt", "application/vnd.oasis.opendocument.text", False)
KINDS = {kind.extension: kind for kind in (PDF, DOCX, ODT)}


class DocumentTooLarge(InvalidInput):
    message = "The document is too large."


class NotADocument(InvalidInput):
    message = "Upload a PDF, Word (.docx) or OpenDocument (.odt) file."


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


def sniff_kind(path: Path) -> DocumentKind | None:
    """PDF, DOCX or ODT by content; None for anything else (an executable or a web page named .pdf)."""
    with path.open("rb") as stream:
        head = stream.read(8)
    if head.startswith(b"%PDF-"):
        return PDF
    if not head.startswith(b"PK\x03\x04"):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names and archive.read("mimetype")[:100].strip() == ODT.content_type.encode():
                return ODT
            if "[Content_Types].xml" in names and "word/document.xml" in names:
                types = archive.read("[Content_Types].xml")[:200_000]
                if b"wordprocessingml.document.main+xml" in types:
                    return DOCX
    except (zipfile.BadZipFile, OSError, KeyError, RuntimeError, NotImplementedError):
        return None
    return None


def safe_file_name(original: str, kind: DocumentKind) -> str:
    """The uploaded name without folders, control or reserved characters, ending in the real extension."""
    name = unicodedata.normalize("NFC", original or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f\u2028\u2029\"*:<>?|%#;]+", " ", name)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    stem = " ".join(stem.split()).strip(" .-_")[:MAX_NAME_LENGTH]
    return f"{stem or 'document'}.{kind.extension}"


def default_title(file_name: str) -> str:
    stem = file_name.rsplit(".", 1)[0]
    return " ".join(stem.replace("_", " ").replace("-", " ").split()) or "Document"


def human_size(size: int) -> str:
    """240 KB, 1.4 MB: rounded the way a reader expects."""
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def store_document(
    session: Session,
    announcement: Announcement,
    stream: BinaryIO,
    *,
    file_name: str,
    title: str,
    directory: Path,
    max_bytes: int,
    clock: Clock,
) -> Document:
    """Save an upload for a draft announcement. Raises WrongState once sending has started,
    DocumentTooLarge over max_bytes, NotADocument when the content is not PDF/DOCX/ODT,
    InvalidInput for a bad title."""
    _require(announcement, EDITABLE, "Documents can only be added before sending starts.")
    title = " ".join((title or "").split())
    if len(title) > MAX_TITLE_LENGTH:
        raise InvalidInput(f"The link text must be {MAX_TITLE_LENGTH} characters or fewer.", field="title")
    directory.mkdir(parents=True, exist_ok=True)
    storage_name = secrets.token_hex(16)
    path = directory / storage_name
    size = 0
    try:
        with path.open("xb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise DocumentTooLarge(
                        f"The document is larger than {human_size(max_bytes)}. Make it smaller and try again.",
                        field="document",
                    )
                out.write(chunk)
        if size == 0:
            raise NotADocument("The file is empty. Choose the document again.", field="document")
        kind = sniff_kind(path)
        if kind is None:
            raise NotADocument(
                "This file is not a PDF, Word (.docx) or OpenDocument (.odt) document, whatever its name says. "
                "Save the letter as a PDF and upload that.",
                field="document",
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    safe_name = safe_file_name(file_name, kind)
    now = clock.now()
    document = Document(
        public_id=secrets.token_urlsafe(16),
        announcement_id=announcement.id,
        title=title or default_title(safe_name),
        file_name=safe_name,
        kind=kind.extension,
        size_bytes=size,
        storage_name=storage_name,
        created_at=now,
    )
    session.add(document)
    announcement.updated_at = now  # the rendered email changes: a new cache key
    session.flush()
    return document


def delete_document(session: Session, announcement: Announcement, document: Document, *, clock: Clock) -> str:
    """Remove a document from a draft; returns its storage name, for the caller to delete after commit.

    Raises WrongState once sending has started (the email already links to it)."""
    _require(announcement, EDITABLE, "Its documents can only be removed before sending starts.")
    if document.announcement_id != announcement.id:
        raise InvalidInput("That document does not belong to this announcement.")
    storage_name = document.storage_name
    session.delete(document)
    announcement.updated_at = clock.now()
    session.flush()
    return storage_name


def remove_stored_file(directory: Path, storage_name: str) -> None:
    if re.fullmatch(r"[0-9a-f]{32}", storage_name):
        (directory / storage_name).unlink(missing_ok=True)


def stored_path(directory: Path, document: Document) -> Path:
    return directory / document.storage_name


def list_documents(session: Session, announcement_id: int) -> list[Document]:
    return list(
        session.scalars(select(Document).where(Document.announcement_id == announcement_id).order_by(Document.id))
    )


def find_document(session: Session, public_id: str) -> Document | None:
    if not re.fullmatch(r"[A-Za-z0-9_-]{10,40}", public_id or ""):
        return None
    return session.scalar(select(Document).where(Document.public_id == public_id))


def document_path(document: Document) -> str:
    return f"/documents/{document.public_id}/{document.file_name}"


def link_for(document: Document) -> DocumentLink:
    return DocumentLink(
        title=document.title, label=KINDS[document.kind].label if document.kind in KINDS else document.kind.upper(),
        size_bytes=document.size_bytes, path=document_path(document),
    )


def find_document_links(session: Session, announcement_ids: Iterable[int]) -> dict[int, tuple[DocumentLink, ...]]:
    """Each announcement's document links, in upload order: one query for all of them."""
    ids = set(announcement_ids)
    if not ids:
        return {}
    found: dict[int, list[DocumentLink]] = {}
    for document in session.scalars(
        select(Document).where(Document.announcement_id.in_(ids)).order_by(Document.id)
    ):
        found.setdefault(document.announcement_id or 0, []).append(link_for(document))
    return {key: tuple(links) for key, links in found.items()}


def markdown_section(links: Iterable[DocumentLink], base_url: str) -> str:
    """The "Documents" section appended to an announcement's Markdown at render time."""
    items = [f"- [{_escape_markdown(link.text)}]({base_url}{_url_path(link.path)})" for link in links]
    return "\n\n## Documents\n\n" + "\n".join(items) + "\n" if items else ""


def _url_path(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/-_.~")


def _escape_markdown(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]()<>#+!|~&])", r"\\\1", text)


def document_dir(configured: str, instance_path: str) -> Path:
    return Path(configured) if configured else Path(instance_path) / "documents"
