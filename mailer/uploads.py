"""Writing an uploaded or generated file to disk: all of it or nothing.

An upload that fills the disk must not leave a cut-off file of members behind (issue 15): the
bytes go to a hidden temporary name next to the target and are renamed into place only when
every byte is written and flushed; on any failure the temporary file is removed. A full disk,
quota or file size limit becomes StorageFull, which the pages show as a 507.

Every file mailer writes with members' data in it is created owner-only (0600) whatever the umask,
through open_private; the SQLite database through private_sqlite_file, before SQLite opens it."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, BinaryIO

from mailer.errors import StorageFull

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
PARTIAL_SUFFIX = ".part"
CHUNK_SIZE = 64 * 1024


def stream_chunks(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterable[bytes]:
    while chunk := stream.read(chunk_size):
        yield chunk


PRIVATE_FILE_MODE = 0o600


def open_private(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> IO[Any]:
    """Open a file for writing that only the service's own user can read (issue 15).

    Files we write hold members' data (exports, uploads, results, the development mailbox): they
    are created 0600 whatever the umask, not world-readable. `mode` is "w"/"x" with "b" or text
    options as for open(); an existing file is truncated and narrowed to 0600 as well."""
    if mode[0] not in "wx":
        raise ValueError("open_private is for writing new files")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if mode[0] == "x" else os.O_TRUNC)
    descriptor = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
        return os.fdopen(descriptor, "w" + mode[1:], **kwargs)
    except BaseException:
        os.close(descriptor)
        raise


def private_sqlite_file(path: str | os.PathLike[str]) -> None:
    """Before SQLite opens the database at `path` (every member is in it): create it empty and
    owner-only when it does not exist yet, so SQLite never creates it with the umask's mode (its
    -wal and -shm files take the database's mode); an existing one that others can read, and its
    -wal and -shm, are narrowed to 0600. A file this user cannot change is left to the operator."""
    database = Path(path)
    try:
        open_private(database, "xb").close()
        return
    except FileExistsError:
        pass
    except OSError:  # no such folder, read-only: SQLite reports it better
        return
    for file in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        try:
            if file.stat().st_mode & 0o077:
                file.chmod(PRIVATE_FILE_MODE)
        except OSError:  # gone meanwhile, or not ours
            continue


def write_file(path: Path, chunks: Iterable[bytes]) -> int:
    """Write `chunks` to `path` (replacing it), all or nothing; returns the size written.

    Raises StorageFull when there is no room; any other error (including one raised by
    `chunks`, such as a size check) is raised as it is. Either way nothing is left at `path`
    or under a temporary name."""
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")
    size = 0
    try:
        with open_private(partial, "xb") as out:
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            raise StorageFull() from exc
        raise
    return size


def make_directory(directory: Path, *, mode: int = 0o777) -> None:
    """mkdir -p, with a full disk reported as StorageFull like a failed write."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=mode)
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise StorageFull() from exc
        raise
