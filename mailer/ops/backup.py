"""Backups (`flask --app wsgi backup`): a consistent SQLite copy, or the pg_dump command to run.

SQLite's online backup API copies a consistent snapshot while the web app and the worker
keep writing. PostgreSQL has its own tool; we print the exact command instead of guessing
where the operator keeps passwords."""

from __future__ import annotations

import os
import shlex
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import URL

from mailer.uploads import open_private


@dataclass(frozen=True)
class SqliteBackup:
    path: Path
    size: int
    members: int


class BackupRefused(Exception):
    """The backup was not written; the message says why."""


def default_backup_name(now: datetime, suffix: str) -> str:
    return f"mailer-{now.strftime('%Y%m%dT%H%M%SZ')}{suffix}"


def backup_sqlite(source: Path, target: Path) -> SqliteBackup:
    """Copy the live database to `target` (a new file, readable by its owner only), then check it.

    Written under a temporary name and renamed, so a half-written file never looks like a backup.
    Raises BackupRefused when the source is missing, the target exists or the copy fails its check."""
    if not source.exists():
        raise BackupRefused(f"there is no database at {source}")
    if target.exists():
        raise BackupRefused(f"{target} already exists: choose another --output")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    open_private(partial, "xb").close()  # members' data: owner only, and SQLite keeps the mode
    try:
        # The URI form opens read-only and never creates a missing file.
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file: restoring is a copy
                if dst.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                    raise BackupRefused("the copy failed SQLite's integrity check")
                members = dst.execute("SELECT count(*) FROM member").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return SqliteBackup(target, target.stat().st_size, int(members))


def pg_dump_instructions(url: URL, output: str) -> str:
    """What to run for a PostgreSQL database, and how to restore it. The password is never printed."""
    connection = []
    if url.host:
        connection.append(f"--host={shlex.quote(url.host)}")
    if url.port:
        connection.append(f"--port={url.port}")
    if url.username:
        connection.append(f"--username={shlex.quote(url.username)}")
    database = shlex.quote(url.database or "mailer")
    options = " ".join(connection)
    return "\n".join([
        "PostgreSQL: back up with pg_dump (give the password with PGPASSWORD or ~/.pgpass; it is not shown here):",
        f"  pg_dump --format=custom --file={shlex.quote(output)} {options} {database}",
        "Restore into a new, empty database (then point FLASK_SQLALCHEMY_DATABASE_URI at it, or rename it):",
        f"  createdb {options} --owner={shlex.quote(url.username or 'mailer')} mailer_restored",
        f"  pg_restore --no-owner --role={shlex.quote(url.username or 'mailer')} {options} "
        f"--dbname=mailer_restored {shlex.quote(output)}",
    ])
