"""Issue 15: every file with members' data is created readable by the service's user only (0600),
whatever the umask: exports, import uploads and results, hosted documents, the development mailbox,
the SQLite database and its backups."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import base_config
from sqlalchemy import text

from mailer import create_app
from mailer.extensions import db
from mailer.ops.devmailbox import MailboxStore
from mailer.uploads import open_private, write_file
from support.factories import add_member, admin_post, logged_in_admin
from support.web import path_of

OWNER_ONLY = 0o600


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Any:
    """The worst case: a umask that would make every new file world-readable and writable."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_open_private_creates_and_narrows_files_to_the_owner(tmp_path: Path) -> None:
    """A new file is 0600; an existing world-readable file written again is narrowed to 0600 too."""
    fresh = tmp_path / "fresh.csv"
    with open_private(fresh, "w", encoding="utf-8") as out:
        out.write("email\n")
    assert mode_of(fresh) == OWNER_ONLY and fresh.read_text("utf-8") == "email\n"
    old = tmp_path / "old.csv"
    old.write_text("stale")
    old.chmod(0o666)
    with open_private(old, "wb") as out:
        out.write(b"new")
    assert mode_of(old) == OWNER_ONLY and old.read_bytes() == b"new"
    with pytest.raises(FileExistsError):
        open_private(old, "xb")
    with pytest.raises(ValueError):
        open_private(old, "rb")


def test_uploads_and_results_are_written_owner_only(tmp_path: Path) -> None:
    """write_file (import uploads, result files, documents) leaves a 0600 file."""
    target = tmp_path / "upload.csv"
    write_file(target, [b"email\r\n", b"someone@example.org\r\n"])
    assert mode_of(target) == OWNER_ONLY


def test_members_export_to_a_file_is_owner_only(app: Any, clock: Any, tmp_path: Path) -> None:
    """`flask members export -o FILE` writes a file only its owner can read."""
    with app.app_context():
        add_member("parent@example.org", clock=clock)
    output = tmp_path / "members.csv"
    result = app.test_cli_runner().invoke(args=["members", "export", "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert "parent@example.org" in output.read_text("utf-8")
    assert mode_of(output) == OWNER_ONLY


def test_import_upload_and_result_files_are_owner_only(make_app: Any, clock: Any, tmp_path: Path) -> None:
    """The CSV waiting between preview and apply, and the result file, are 0600."""
    import_dir = tmp_path / "imports"
    app = make_app(MAILER_IMPORT_DIR=str(import_dir))
    admin = logged_in_admin(app, clock)
    response = admin.post(
        "/admin/members/import",
        data={"csrf_token": _token(admin, "/admin/members/import"), "file": (_csv(), "members.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    preview = path_of(response.headers["Location"])
    waiting = [p for p in import_dir.iterdir() if p.is_file()]
    assert [p.suffix for p in waiting] == [".csv"] and mode_of(waiting[0]) == OWNER_ONLY
    assert admin_post(admin, preview, f"{preview}/apply").status_code == 303
    results = [p for p in import_dir.iterdir() if p.is_file()]
    assert [p.suffix for p in results] == [".json"] and mode_of(results[0]) == OWNER_ONLY


def test_development_mailbox_keeps_messages_owner_only(tmp_path: Path) -> None:
    """The development mailbox stores real addresses: its messages and their envelopes are 0600."""
    store = MailboxStore(tmp_path / "mailbox")
    store.add(b"From: a@example.org\r\nTo: parent@example.org\r\nSubject: Hi\r\n\r\nHello\r\n",
              mail_from="a@example.org", rcpt_tos=["parent@example.org"])
    files = [p for p in (tmp_path / "mailbox").iterdir() if p.is_file()]
    assert files and all(mode_of(p) == OWNER_ONLY for p in files)
    assert mode_of(tmp_path / "mailbox") == 0o700


def test_a_new_sqlite_database_is_owner_only(tmp_path: Path) -> None:
    """`flask db upgrade` on a new SQLite database creates it, and its -wal and -shm files, 0600: every member
    is in it."""
    database = tmp_path / "instance" / "mailer.db"
    database.parent.mkdir()
    app = create_app(base_config(f"sqlite:///{database}"))
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        db.session.execute(text("SELECT count(*) FROM member"))  # a connection open: -wal and -shm exist
        files = sorted(p.name for p in database.parent.iterdir())
        assert files == ["mailer.db", "mailer.db-shm", "mailer.db-wal"], files
        assert all(mode_of(database.parent / name) == OWNER_ONLY for name in files)
        db.session.remove()
        db.engine.dispose()


def test_an_existing_world_readable_sqlite_database_is_narrowed(sqlite_uri: str) -> None:
    """A database copied in with the umask's mode (as a restore with cp does) is narrowed to 0600 when the
    app first opens it."""
    database = Path(sqlite_uri.removeprefix("sqlite:///"))
    database.chmod(0o644)
    app = create_app(base_config(sqlite_uri))
    with app.app_context():
        assert db.session.execute(text("SELECT count(*) FROM member")).scalar() == 0
        assert mode_of(database) == OWNER_ONLY
        db.session.remove()
        db.engine.dispose()


def test_a_sqlite_backup_is_owner_only(sqlite_uri: str, tmp_path: Path) -> None:
    """`flask backup --output FILE` writes its copy through the same helper: 0600 whatever the umask."""
    app = create_app(base_config(sqlite_uri))
    output = tmp_path / "backups" / "nightly.db"
    result = app.test_cli_runner().invoke(args=["backup", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert mode_of(output) == OWNER_ONLY and mode_of(output.parent) == 0o700
    with app.app_context():
        db.engine.dispose()


def _csv() -> Any:
    import io

    return io.BytesIO(b"email,name\r\nnew.parent@example.org,New Parent\r\n")


def _token(client: Any, path: str) -> str:
    from support.web import csrf_token

    return csrf_token(client.get(path).get_data(as_text=True))
