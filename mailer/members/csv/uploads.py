"""Stored uploads: the web import previews a file, then applies the same file (J6).

An upload lists people nobody has imported yet, so it is kept owner-only, under a random
unguessable id, for a day at most; a result keeps counts and line numbers, never addresses."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from mailer.clock import Clock
from mailer.errors import InvalidInput
from mailer.members.csv.plan import ImportSummary
from mailer.uploads import PARTIAL_SUFFIX, make_directory, stream_chunks, write_file

UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
UPLOAD_KEEP = timedelta(hours=24)


def new_upload_path(directory: Path) -> tuple[str, Path]:
    """A random, unguessable name for an uploaded file in `directory` (created if needed)."""
    make_directory(directory, mode=0o700)
    import_id = secrets.token_urlsafe(16)
    return import_id, directory / f"{import_id}.csv"


def save_upload(directory: Path, stream: BinaryIO) -> tuple[str, Path]:
    """Store an uploaded CSV under a new random id; returns (id, path).

    All or nothing: raises StorageFull when the disk is full, and no partial file is left."""
    import_id, path = new_upload_path(directory)
    write_file(path, stream_chunks(stream))
    return import_id, path


def save_result(directory: Path, import_id: str, summary: ImportSummary) -> None:
    """Keep what an applied import did, without addresses, for the result page (a day at most).

    Raises StorageFull when the disk is full; nothing partial is left."""
    write_file(result_path(directory, import_id), [summary.to_json().encode("utf-8")])


def upload_path(directory: Path, import_id: str) -> Path:
    """The stored upload for this id. Raises InvalidInput when it is gone (applied, cancelled, expired)."""
    path = directory / f"{import_id}.csv"
    if not UPLOAD_ID.match(import_id or "") or not path.is_file():
        raise InvalidInput(
            "That import is no longer waiting: it was applied, cancelled or is more than a day old. "
            "Upload the file again."
        )
    return path


def result_path(directory: Path, import_id: str) -> Path:
    if not UPLOAD_ID.match(import_id or ""):
        raise InvalidInput("There is no such import.")
    return directory / f"{import_id}.result.json"


def discard_upload(directory: Path, import_id: str) -> None:
    if UPLOAD_ID.match(import_id or ""):
        (directory / f"{import_id}.csv").unlink(missing_ok=True)


def remove_stale_uploads(directory: Path, *, clock: Clock, keep: timedelta = UPLOAD_KEEP) -> int:
    """Delete uploads, results and unfinished writes last changed more than `keep` ago: an
    upload lists people nobody imported. Daily housekeeping and `flask purge` call this."""
    if not directory.is_dir():
        return 0
    cutoff = (clock.now() - keep).timestamp()
    removed = 0
    for path in directory.iterdir():
        if path.suffix not in (".csv", ".json", PARTIAL_SUFFIX) or not path.is_file():
            continue
        try:
            stale = path.stat().st_mtime < cutoff
        except FileNotFoundError:  # applied or cancelled meanwhile
            continue
        if stale:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
