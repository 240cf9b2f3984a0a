"""Hosted documents (issue 9): a letter shared as a link on the forum's own site, not as an attachment.

An upload is checked by its content, not its name (a PDF starts with %PDF-; DOCX and ODT are
zip files that say what they are inside), stored under a random name, and served at a
stable public URL with a safe version of its original name. The email links to it with its
type and size in the link text ("Council letter (PDF, 240 KB)")."""

from __future__ import annotations

import re
import secrets
import struct
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.announcements.states import Action, transition
from mailer.clock import Clock
from mailer.errors import InvalidInput
from mailer.mail.document_links import DocumentLink, human_size
from mailer.models import Announcement, Document
from mailer.uploads import make_directory, stream_chunks, write_file

MAX_TITLE_LENGTH = 200
MAX_NAME_LENGTH = 120
_CHUNK = 64 * 1024
# Zip bombs (issue 15): limits on what a DOCX or ODT says it unpacks to, checked before unpacking.
# A long letter with photos unpacks to a few MB in a few dozen files, packed 2 to 20 to one;
# a bomb is packed about 1,000 to one.
MAX_ZIP_ENTRIES = 5_000
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200
MAX_SNIFF_BYTES = 256 * 1024  # read of one entry when deciding the type
_UNPACKS_TOO_BIG = (
    "This file says it unpacks to far more than any document needs, so it was not kept. "
    "Open it in your word processor, save it as a PDF and upload that."
)


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


def sniff_kind(path: Path) -> DocumentKind | None:
    """PDF, DOCX or ODT by content; None for anything else (an executable or a web page named .pdf).

    A DOCX or ODT is a zip file, and a small zip can unpack to gigabytes (a "zip bomb"): raises
    DocumentTooLarge when the archive says it holds too many files, too much in all, or is packed
    tighter than documents are, before anything is unpacked; then at most a few hundred KB of one
    or two entries is read, never a whole entry."""
    with path.open("rb") as stream:
        head = stream.read(8)
    if head.startswith(b"%PDF-"):
        return PDF
    if not head.startswith(b"PK\x03\x04"):
        return None
    try:
        _check_entry_count(path)  # before ZipFile reads the whole central directory into memory
        with zipfile.ZipFile(path) as archive:
            _check_declared_sizes(archive.infolist(), path.stat().st_size)
            names = set(archive.namelist())
            if "mimetype" in names and _read_prefix(archive, "mimetype", 100).strip() == ODT.content_type.encode():
                return ODT
            if "[Content_Types].xml" in names and "word/document.xml" in names:
                types = _read_prefix(archive, "[Content_Types].xml", MAX_SNIFF_BYTES)
                if b"wordprocessingml.document.main+xml" in types:
                    return DOCX
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, KeyError, RuntimeError, NotImplementedError,
            EOFError, ValueError):
        return None
    return None


def _read_prefix(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """The first `limit` bytes of an entry: zipfile unpacks as it is read, so this never unpacks more."""
    with archive.open(name) as entry:
        return entry.read(limit)


def _check_entry_count(path: Path) -> None:
    """Refuse an archive whose end record says it lists more files than any document has.

    The end-of-central-directory record is the last 22 bytes plus a comment of up to 64 KB
    (APPNOTE 4.3.16); 0xFFFF entries means a ZIP64 archive, which no letter needs either."""
    with path.open("rb") as stream:
        stream.seek(0, 2)
        size = stream.tell()
        stream.seek(max(0, size - (22 + 0xFFFF)))
        tail = stream.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise zipfile.BadZipFile("no end record")
    _, _, on_disk, total, _, _, _ = struct.unpack("<HHHHIIH", tail[at + 4 : at + 22])
    if max(on_disk, total) > MAX_ZIP_ENTRIES:
        raise DocumentTooLarge(_UNPACKS_TOO_BIG, field="document")


def _check_declared_sizes(entries: list[zipfile.ZipInfo], file_size: int) -> None:
    """What the archive says it unpacks to, in all and against its own size: a letter is never
    more than MAX_UNPACKED_BYTES, nor packed more than MAX_COMPRESSION_RATIO to one."""
    unpacked = sum(entry.file_size for entry in entries)
    if (
        len(entries) > MAX_ZIP_ENTRIES
        or unpacked > MAX_UNPACKED_BYTES
        or unpacked > MAX_COMPRESSION_RATIO * max(file_size, 1)
    ):
        raise DocumentTooLarge(_UNPACKS_TOO_BIG, field="document")


def without_format_characters(text: str) -> str:
    """`text` without invisible format characters (Unicode category Cf): the bidi overrides and
    isolates that make "gnp\u202eexe.pdf" show as "gnpfdp.exe", zero-width joiners and spaces,
    soft hyphens. None of them belongs in a file name or a link text."""
    return "".join(char for char in text if unicodedata.category(char) != "Cf")


def safe_file_name(original: str, kind: DocumentKind) -> str:
    """The uploaded name without folders, control, format or reserved characters, ending in the real extension."""
    name = without_format_characters(unicodedata.normalize("NFC", original or ""))
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f\u2028\u2029\"*:<>?|%#;]+", " ", name)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    stem = " ".join(stem.split()).strip(" .-_")[:MAX_NAME_LENGTH]
    return f"{stem or 'document'}.{kind.extension}"


def default_title(file_name: str) -> str:
    stem = file_name.rsplit(".", 1)[0]
    return " ".join(stem.replace("_", " ").replace("-", " ").split()) or "Document"


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
    DocumentTooLarge over max_bytes (or a zip that unpacks to too much), NotADocument when the
    content is not PDF/DOCX/ODT, InvalidInput for a bad title, StorageFull when the disk is full."""
    transition(session, announcement.id, Action.EDIT, clock=clock)  # refused once sending has started
    title = " ".join(without_format_characters(title or "").split())
    if len(title) > MAX_TITLE_LENGTH:
        raise InvalidInput(f"The link text must be {MAX_TITLE_LENGTH} characters or fewer.", field="title")
    make_directory(directory)
    storage_name = secrets.token_hex(16)
    path = directory / storage_name

    def chunks() -> Iterator[bytes]:
        size = 0
        for chunk in stream_chunks(stream, _CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise DocumentTooLarge(
                    f"The document is larger than {human_size(max_bytes)}. Make it smaller and try again.",
                    field="document",
                )
            yield chunk

    size = write_file(path, chunks())  # all or nothing: a full disk leaves no partial file (StorageFull)
    try:
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
    session.add(document)  # the EDIT above set updated_at: the rendered email changes, a new cache key
    session.flush()
    return document


def delete_document(session: Session, announcement: Announcement, document: Document, *, clock: Clock) -> str:
    """Remove a document from a draft; returns its storage name, for the caller to delete after commit.

    Raises WrongState once sending has started (the email already links to it)."""
    transition(session, announcement.id, Action.EDIT, clock=clock)  # refused once sending has started
    if document.announcement_id != announcement.id:
        raise InvalidInput("That document does not belong to this announcement.")
    storage_name = document.storage_name
    session.delete(document)  # the EDIT above set updated_at
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
    return f"/documents/{document.public_id}/{download_name(document)}"


def download_name(document: Document) -> str:
    """The name a browser saves the file as; also cleans names stored before format characters were removed."""
    return without_format_characters(document.file_name) or f"document.{document.kind}"


def link_for(document: Document) -> DocumentLink:
    return DocumentLink(
        title=without_format_characters(document.title),
        label=KINDS[document.kind].label if document.kind in KINDS else document.kind.upper(),
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
