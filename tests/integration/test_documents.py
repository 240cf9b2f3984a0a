"""Issue 9, hosted documents: uploads checked by content and size, stored under random names, served
with a safe name and the right headers, linked from the email with type and size, listed in the archive."""

from __future__ import annotations

import io
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlalchemy import select

from mailer.extensions import db
from mailer.models import Document
from mailer.worker.runner import run_tick_for_app
from support.documents import ELF, HTML, tiny_docx, tiny_odt, tiny_pdf
from support.factories import add_member, admin_post, compose, logged_in_admin
from support.mail import flat, html_links, parts, text_links
from support.web import csrf_token, path_of


@pytest.fixture
def documents_app(make_app, tmp_path):  # type: ignore[no-untyped-def]
    return make_app(MAILER_DOCUMENT_DIR=str(tmp_path / "documents"), MAILER_DOCUMENT_MAX_BYTES=64 * 1024)


def upload(client, announcement_id: int, content: bytes, file_name: str, title: str = ""):  # type: ignore[no-untyped-def]
    page = f"/admin/announcements/{announcement_id}/documents/new"
    token = csrf_token(client.get(page).get_data(as_text=True))
    return client.post(
        page,
        data={"csrf_token": token, "title": title, "document": (io.BytesIO(content), file_name)},
        content_type="multipart/form-data",
    )


def documents(app) -> list[Document]:  # type: ignore[no-untyped-def]
    with app.app_context():
        rows = list(db.session.scalars(select(Document).order_by(Document.id)))
        db.session.expunge_all()
        return rows


def stored_files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "documents"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_real_pdf_is_stored_served_and_linked_from_the_email_with_type_and_size(documents_app, clock, smtp, tmp_path):
    """Upload, serve with the right headers, and link as 'Council letter (PDF, N KB)' in both parts of the mail."""
    app = documents_app
    with app.app_context():
        add_member("reader@example.org", clock=clock, name="Zoë")
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="A letter from the council", body="Dear {{ name }},\n\nSee the letter.")
    pdf = tiny_pdf(padding=3000)
    response = upload(admin, announcement_id, pdf, "council-letter.pdf", title="Council letter")
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    [document] = documents(app)
    assert document.kind == "pdf" and document.size_bytes == len(pdf) and document.file_name == "council-letter.pdf"
    [stored] = stored_files(tmp_path)
    assert stored.name == document.storage_name and re.fullmatch(r"[0-9a-f]{32}", stored.name)
    assert stored.read_bytes() == pdf

    public = f"/documents/{document.public_id}/council-letter.pdf"
    served = app.test_client().get(public)
    assert served.status_code == 200 and served.data == pdf
    assert served.headers["Content-Type"] == "application/pdf"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Disposition"] == "inline; filename=council-letter.pdf"
    assert app.test_client().get(f"/documents/{'x' * 22}/council-letter.pdf").status_code == 404

    page = f"/admin/announcements/{announcement_id}"
    assert "Council letter" in admin.get(page).get_data(as_text=True)
    assert admin_post(admin, page, f"{page}/send-now").status_code == 303
    run_tick_for_app(app)
    text, html = parts(smtp.wait_for(1)[0].message)
    url = f"https://forum.test{public}"
    size = f"{round(len(pdf) / 1024)} KB"
    assert f"Council letter (PDF, {size})" in flat(text) and url in text_links(text)
    assert f"Council letter (PDF, {size})</a>" in html and url in html_links(html)
    assert "<h2" in html and "Documents" in html


@pytest.mark.parametrize(
    ("content", "file_name", "kind", "served_name", "content_type"),
    [
        (tiny_docx(), "Minutes.docx", "docx", "Minutes.docx",
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (tiny_odt(), "Minutes.odt", "odt", "Minutes.odt", "application/vnd.oasis.opendocument.text"),
        (tiny_docx(), "really-a-word-file.pdf", "docx", "really-a-word-file.docx",
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ],
)
def test_word_and_opendocument_files_are_recognised_by_content(documents_app, clock, content, file_name, kind,
                                                              served_name, content_type):
    """DOCX and ODT are zips that say what they are; the stored name gets the real extension; they download."""
    admin = logged_in_admin(documents_app, clock)
    announcement_id = compose(admin, subject="Minutes", body="The minutes.")
    assert upload(admin, announcement_id, content, file_name).status_code == 303
    [document] = documents(documents_app)
    assert (document.kind, document.file_name) == (kind, served_name)
    served = documents_app.test_client().get(f"/documents/{document.public_id}/{served_name}")
    assert served.headers["Content-Type"] == content_type
    assert served.headers["Content-Disposition"].startswith("attachment;")


@pytest.mark.parametrize(
    ("content", "file_name"),
    [
        (ELF, "letter.pdf"),
        (HTML, "letter.pdf"),
        (b"PK\x03\x04" + b"\x00" * 100, "letter.docx"),
        (b"", "empty.pdf"),
    ],
    ids=["executable", "html", "broken-zip", "empty"],
)
def test_files_that_are_not_documents_are_refused_whatever_their_name(documents_app, clock, tmp_path, content,
                                                                      file_name):
    """The type is read from the content: an executable or a web page named .pdf is refused, nothing kept."""
    admin = logged_in_admin(documents_app, clock)
    announcement_id = compose(admin, subject="Letter", body="A letter.")
    response = upload(admin, announcement_id, content, file_name)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "There is a problem" in page
    assert "not a PDF, Word (.docx) or OpenDocument (.odt) document" in page or "The file is empty" in page
    assert documents(documents_app) == [] and stored_files(tmp_path) == []


def test_oversized_file_gets_a_clear_413_page_and_nothing_is_kept(documents_app, clock, tmp_path):
    """Over the request limit: 413 with a page that says what to do; just over the document limit: 400."""
    admin = logged_in_admin(documents_app, clock)
    announcement_id = compose(admin, subject="Letter", body="A letter.")
    response = upload(admin, announcement_id, tiny_pdf(padding=200 * 1024), "huge.pdf")
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "The document is larger than this page accepts" in page and "0.1 MB at most" in page
    slightly = upload(admin, announcement_id, tiny_pdf(padding=70 * 1024), "big.pdf")
    assert slightly.status_code == 400 and "The document is larger than 64 KB" in slightly.get_data(as_text=True)
    assert documents(documents_app) == [] and stored_files(tmp_path) == []
    # Other pages keep the small default limit.
    token = csrf_token(admin.get("/admin/announcements/new").get_data(as_text=True))
    big_form = admin.post(
        "/admin/announcements/new", data={"csrf_token": token, "subject": "x", "body": "y" * (2 * 1024 * 1024)}
    )
    assert big_form.status_code == 413


@pytest.mark.parametrize(
    ("file_name", "safe_name", "disposition"),
    [
        ("../../etc/passwd.pdf", "passwd.pdf", "inline; filename=passwd.pdf"),
        (
            "Lettre du conseil – Zoë.pdf",
            "Lettre du conseil – Zoë.pdf",
            "inline; filename=\"Lettre du conseil  Zoe.pdf\"; "
            "filename*=UTF-8''Lettre%20du%20conseil%20%E2%80%93%20Zo%C3%AB.pdf",
        ),
        (
            "../..//%2e%2e/ça;<b>.pdf",
            "ça b .pdf".replace(" .pdf", ".pdf"),
            "inline; filename=\"ca b.pdf\"; filename*=UTF-8''%C3%A7a%20b.pdf",
        ),
    ],
)
def test_path_tricks_and_non_ascii_names_are_stored_safely_and_served_with_a_safe_name(
    documents_app, clock, tmp_path, file_name, safe_name, disposition
):
    """Folders in the name are dropped; the file lives under a random name; non-ASCII uses RFC 6266 filename*."""
    admin = logged_in_admin(documents_app, clock)
    announcement_id = compose(admin, subject="Letter", body="A letter.")
    assert upload(admin, announcement_id, tiny_pdf(), file_name).status_code == 303
    [document] = documents(documents_app)
    assert document.file_name == safe_name
    [stored] = stored_files(tmp_path)
    assert stored.parent == tmp_path / "documents" and stored.name == document.storage_name
    assert not (tmp_path / "etc").exists()
    served = documents_app.test_client().get(f"/documents/{document.public_id}/{safe_name}")
    assert served.status_code == 200
    assert served.headers["Content-Disposition"] == disposition
    page = admin.get(f"/admin/announcements/{announcement_id}").get_data(as_text=True)
    link = re.search(r'href="(/documents/[^"]+)"', page).group(1)
    assert unquote(link) == f"/documents/{document.public_id}/{safe_name}".replace("&", "&amp;")


def test_removing_a_document_asks_first_then_deletes_row_and_file(documents_app, clock, tmp_path):
    """GET shows a confirmation and changes nothing; POST removes the document and its file."""
    admin = logged_in_admin(documents_app, clock)
    announcement_id = compose(admin, subject="Letter", body="A letter.")
    upload(admin, announcement_id, tiny_pdf(), "letter.pdf", title="The letter")
    [document] = documents(documents_app)
    confirm_path = f"/admin/announcements/{announcement_id}/documents/{document.id}/delete"
    confirm = admin.get(confirm_path)
    assert confirm.status_code == 200 and "Remove “The letter”?" in confirm.get_data(as_text=True)
    assert len(documents(documents_app)) == 1 and len(stored_files(tmp_path)) == 1
    assert admin_post(admin, confirm_path, confirm_path).status_code == 303
    assert documents(documents_app) == [] and stored_files(tmp_path) == []
    assert documents_app.test_client().get(f"/documents/{document.public_id}/letter.pdf").status_code == 404


def test_public_archive_lists_the_documents_of_a_public_announcement(documents_app, clock, smtp):
    """J7: someone who lost the email finds the letter on the archive page."""
    app = documents_app
    with app.app_context():
        add_member("reader@example.org", clock=clock)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Letter", body="A letter.")
    upload(admin, announcement_id, tiny_pdf(), "letter.pdf", title="Council letter")
    page = f"/admin/announcements/{announcement_id}"
    admin_post(admin, page, f"{page}/send-now")
    run_tick_for_app(app)
    smtp.wait_for(1)
    assert app.test_client().get(f"/archive/{announcement_id}").status_code == 404
    admin_post(admin, page, f"{page}/publish", {"public": "1"})
    archive = app.test_client().get(f"/archive/{announcement_id}").get_data(as_text=True)
    [document] = documents(app)
    assert f'href="/documents/{document.public_id}/letter.pdf"' in archive
    assert "Council letter (PDF, 1 KB)" in archive
    served = app.test_client().get(path_of(f"https://forum.test/documents/{document.public_id}/letter.pdf"))
    assert served.status_code == 200


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("..\\..\\windows\\system32\\letter.pdf", "letter.pdf"),
        ('a"b;c\r\nd<e>.pdf', "a b c d e.pdf"),
        ("....pdf", "document.pdf"),
        (".hidden.exe", "hidden.pdf"),
        ("x" * 300 + ".pdf", "x" * 120 + ".pdf"),
    ],
)
def test_safe_file_name_drops_folders_and_reserved_characters(original, expected):
    """Whatever a browser sends as the name, the served name has no folders, quotes, controls or a wrong extension."""
    from mailer.announcements.documents import PDF, safe_file_name

    assert safe_file_name(original, PDF) == expected


def test_deleting_an_announcement_asks_whether_to_keep_its_documents(documents_app, clock, smtp, tmp_path):
    """Deleting a sent announcement asks about its letter: kept, the emailed link still works; deleted, it is gone."""
    from mailer.models import Announcement, Delivery

    with documents_app.app_context():
        add_member("reader@example.org", clock=clock)
    admin = logged_in_admin(documents_app, clock)
    ids = []
    for title in ("Kept letter", "Deleted letter"):
        announcement_id = compose(admin, subject=title, body="A letter.")
        upload(admin, announcement_id, tiny_pdf(), "letter.pdf", title=title)
        page = f"/admin/announcements/{announcement_id}"
        assert admin_post(admin, page, f"{page}/send-now").status_code == 303
        ids.append(announcement_id)
    run_tick_for_app(documents_app)
    smtp.wait_for(2)
    kept, deleted = documents(documents_app)
    visitor = documents_app.test_client()

    confirm = admin.get(f"/admin/announcements/{ids[0]}/delete")
    assert confirm.status_code == 200
    assert "Keep it online, so the links in sent emails still work" in confirm.get_data(as_text=True)
    path = f"/admin/announcements/{ids[0]}/delete"
    assert admin_post(admin, path, path, {"documents": "keep"}).status_code == 303
    assert visitor.get(f"/documents/{kept.public_id}/letter.pdf").status_code == 200

    path = f"/admin/announcements/{ids[1]}/delete"
    assert admin_post(admin, path, path, {"documents": "delete"}).status_code == 303
    assert visitor.get(f"/documents/{deleted.public_id}/letter.pdf").status_code == 404
    assert [d.public_id for d in documents(documents_app)] == [kept.public_id]
    assert len(stored_files(tmp_path)) == 1
    with documents_app.app_context():
        assert db.session.scalar(select(Announcement.id)) is None
        assert db.session.scalar(select(Delivery.id)) is None


def test_an_announcement_that_is_sending_cannot_be_deleted(documents_app, clock, smtp):
    """Deleting while it is scheduled is a clear 409 and changes nothing."""
    from mailer.models import Announcement

    with documents_app.app_context():
        add_member("soon@example.org", clock=clock)  # an audience of nobody cannot be sent (issue 18)
    admin = logged_in_admin(documents_app, clock)
    announcement_id = compose(admin, subject="Soon", body="Soon.")
    page = f"/admin/announcements/{announcement_id}"
    assert admin_post(admin, page, f"{page}/send-now").status_code == 303
    assert admin.get(f"{page}/delete").status_code == 409
    assert admin_post(admin, page, f"{page}/delete").status_code == 409
    with documents_app.app_context():
        assert db.session.get(Announcement, announcement_id) is not None


# --- issue 15: zip bombs, names with format characters, caching ---------------------------------

BOMB_ENTRY_BYTES = 400 * 1024 * 1024


@pytest.fixture(scope="session")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A .docx of about 400 KB whose [Content_Types].xml unpacks to 400 MB (the one in the report)."""
    import zipfile

    path = tmp_path_factory.mktemp("bomb") / "bomb.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("[Content_Types].xml", "w") as entry:
            entry.write(b'<?xml version="1.0"?><Types><Override ContentType="application/vnd.openxmlformats-'
                        b'officedocument.wordprocessingml.document.main+xml"/></Types>')
            chunk = b" " * (4 * 1024 * 1024)
            for _ in range(BOMB_ENTRY_BYTES // len(chunk)):
                entry.write(chunk)
        archive.writestr("word/document.xml", "<w:document/>")
    return path.read_bytes()


def test_a_zip_bomb_is_refused_before_it_is_unpacked(make_app, clock, tmp_path, zip_bomb):
    """A 400 KB .docx that unpacks to 400 MB gets a clear 400 on the upload form, nothing is kept,
    and the upload costs the worker a few MB at most (it used to unpack the whole entry)."""
    import tracemalloc

    app = make_app(MAILER_DOCUMENT_DIR=str(tmp_path / "documents"), MAILER_DOCUMENT_MAX_BYTES=1024 * 1024)
    assert len(zip_bomb) < 1024 * 1024
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Letter", body="A letter.")
    tracemalloc.start()
    try:
        response = upload(admin, announcement_id, zip_bomb, "letter.docx")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "There is a problem" in page and "unpacks to far more than any document needs" in page
    assert documents(app) == [] and stored_files(tmp_path) == []
    assert peak < 16 * 1024 * 1024, f"the upload allocated {peak / 1048576:.0f} MB"


def _zip(entries: list[tuple[str, bytes]], compression: int) -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(
    "content",
    [
        # Packed far tighter than any document: 20 MB of one byte.
        _zip([("[Content_Types].xml", b"wordprocessingml.document.main+xml" + b"a" * 20_000_000),
              ("word/document.xml", b"<w:document/>")], 8),
        # More files than any letter has (the central directory alone would cost memory).
        _zip([("[Content_Types].xml", b"wordprocessingml.document.main+xml"), ("word/document.xml", b"<w/>")]
             + [(f"word/media/{i}", b"") for i in range(6000)], 0),
        # An ODT whose mimetype entry is a bomb.
        _zip([("mimetype", b"application/vnd.oasis.opendocument.text" + b" " * 20_000_000),
              ("content.xml", b"<office:document-content/>")], 8),
    ],
    ids=["ratio", "entries", "odt-mimetype"],
)
def test_sniffing_refuses_archives_by_their_declared_sizes(tmp_path, content):
    """The declared sizes and the entry count are checked before anything is unpacked."""
    from mailer.announcements.documents import DocumentTooLarge, sniff_kind

    path = tmp_path / "upload"
    path.write_bytes(content)
    with pytest.raises(DocumentTooLarge, match="unpacks to far more"):
        sniff_kind(path)


def test_sniffing_reads_only_a_bounded_prefix_of_an_entry(tmp_path):
    """A real-looking DOCX within the limits: only the first few hundred KB of its content types are unpacked."""
    import tracemalloc

    from mailer.announcements.documents import DOCX, MAX_SNIFF_BYTES, sniff_kind

    # 12 MB of varied XML, packed about 100 to one: within the declared limits, so it is read, in part.
    filler = b"".join(b'<Default Extension="x%07d" ContentType="application/xml"/>' % i for i in range(200_000))
    content = _zip([("[Content_Types].xml", b"wordprocessingml.document.main+xml" + filler),
                    ("word/document.xml", b"<w:document/>")], 8)
    path = tmp_path / "letter.docx"
    path.write_bytes(content)
    tracemalloc.start()
    try:
        assert sniff_kind(path) is DOCX
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(filler) > 40 * MAX_SNIFF_BYTES
    assert peak < 8 * MAX_SNIFF_BYTES < len(filler) / 4, f"sniffing allocated {peak / 1048576:.1f} MB"


FORMAT_CHARACTERS = "\u202e\u202d\u2066\u2067\u2068\u2069\u200b\u200d\u200e\u200f\u00ad\ufeff\u061c"


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("invoice\u202egnp.exe.pdf", "invoicegnp.exe.pdf"),  # shown as "invoicefdp.exe.png" before
        ("\u2067letter\u2069 \u200bfor\u00ad you.pdf", "letter for you.pdf"),
        ("\ufeff\u200e\u200f.pdf", "document.pdf"),
        (f"a{FORMAT_CHARACTERS}b.pdf", "ab.pdf"),
        ("Zo\u0308e\u200d.pdf", "Zöe.pdf"),  # a combining mark (Mn) is kept and composed
    ],
)
def test_safe_file_name_drops_bidi_controls_and_other_format_characters(original, expected):
    """U+202E and every other format character (Unicode category Cf) is taken out of the name."""
    import unicodedata

    from mailer.announcements.documents import PDF, safe_file_name

    name = safe_file_name(original, PDF)
    assert name == unicodedata.normalize("NFC", expected)
    assert not any(unicodedata.category(char) == "Cf" for char in name)


def test_format_characters_never_reach_a_document_name_page_header_or_email(documents_app, clock, smtp, tmp_path):
    """An upload named with a right-to-left override: stored, listed, served and linked without it; a name
    stored before the fix is cleaned when served."""
    import unicodedata

    def clean(text: str) -> bool:
        return not any(unicodedata.category(char) == "Cf" for char in unquote(text))

    app = documents_app
    with app.app_context():
        add_member("reader@example.org", clock=clock)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Letter", body="A letter.")
    response = upload(admin, announcement_id, tiny_pdf(), "invoice\u202egnp.exe.pdf", title="Invoice\u202e\u200b fdp")
    assert response.status_code == 303
    [document] = documents(app)
    assert (document.file_name, document.title) == ("invoicegnp.exe.pdf", "Invoice fdp")
    page = admin.get(f"/admin/announcements/{announcement_id}").get_data(as_text=True)
    assert clean(page) and "Invoice fdp" in page
    served = app.test_client().get(f"/documents/{document.public_id}/any-name.pdf")
    assert served.status_code == 200 and clean(served.headers["Content-Disposition"])

    # A row stored before names were cleaned is cleaned on the way out.
    with app.app_context():
        row = db.session.get(Document, document.id)
        row.file_name, row.title = "old\u202egnp.exe.pdf", "Old\u2066 letter"
        db.session.commit()
    served = app.test_client().get(f"/documents/{document.public_id}/x.pdf")
    assert served.headers["Content-Disposition"] == "inline; filename=oldgnp.exe.pdf"
    page = f"/admin/announcements/{announcement_id}"
    assert admin_post(admin, page, f"{page}/send-now").status_code == 303
    run_tick_for_app(app)
    text, html = parts(smtp.wait_for(1)[0].message)
    assert clean(text) and clean(html)
    assert "Old letter (PDF, 1 KB)" in flat(text)
    assert any(f"/documents/{document.public_id}/oldgnp.exe.pdf" in link for link in text_links(text))


def test_documents_are_revalidated_so_a_removed_one_is_gone_from_caches(documents_app, clock, tmp_path):
    """Served `no-cache` with an ETag and Last-Modified: a cache asks each time, gets a 304 while it is
    unchanged, and a 404 once an admin removed it (it used to be `public, max-age=3600`)."""
    admin = logged_in_admin(documents_app, clock)
    announcement_id = compose(admin, subject="Letter", body="A letter.")
    upload(admin, announcement_id, tiny_pdf(), "letter.pdf")
    [document] = documents(documents_app)
    url = f"/documents/{document.public_id}/letter.pdf"
    cache = documents_app.test_client()
    served = cache.get(url)
    assert served.status_code == 200
    assert served.headers["Cache-Control"] == "no-cache"
    assert "public" not in served.headers["Cache-Control"] and "Expires" not in served.headers
    etag, modified = served.headers["ETag"], served.headers["Last-Modified"]
    again = cache.get(url, headers={"If-None-Match": etag, "If-Modified-Since": modified})
    assert again.status_code == 304 and again.data == b""

    confirm_path = f"/admin/announcements/{announcement_id}/documents/{document.id}/delete"
    assert admin_post(admin, confirm_path, confirm_path).status_code == 303
    gone = cache.get(url, headers={"If-None-Match": etag, "If-Modified-Since": modified})
    assert gone.status_code == 404
