"""R1 poster and leaflet (issue 20 part 4): /poster.pdf (A4) and /leaflet.pdf (A5), public; the QR code, rendered
with pdftoppm and decoded with zxing-cpp, is the join URL; pdftotext finds the forum's name, the three lines and
the short join address; /admin/reach previews them and edits the three lines."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from mailer.members.forum_details import DEFAULT_JOINING_LINES
from support.factories import admin_post, logged_in_admin

# Page sizes in points as pdfinfo prints them.
A4_POINTS = (595.28, 841.89)
A5_POINTS = (419.53, 595.28)


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "out.pdf"
    path.write_bytes(pdf)
    result = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, timeout=60)
    return " ".join(result.stdout.decode("utf-8").split())


def page_size(pdf: bytes, tmp_path: Path) -> tuple[float, float]:
    path = tmp_path / "size.pdf"
    path.write_bytes(pdf)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True, timeout=60).stdout.decode()
    match = re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info)
    assert match, info
    return round(float(match.group(1)), 2), round(float(match.group(2)), 2)


def qr_codes(pdf: bytes, tmp_path: Path, dpi: int = 100) -> list[str]:
    """Every QR code zxing-cpp finds on the page rendered to PNG by pdftoppm."""
    path = tmp_path / "qr.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", "-singlefile", str(path), str(tmp_path / "page")],
                   check=True, timeout=60)
    with Image.open(tmp_path / "page.png") as image:
        return [code.text for code in zxingcpp.read_barcodes(image) if code.format == zxingcpp.BarcodeFormat.QRCode]


@pytest.mark.parametrize("database_uri", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("path", "size"), [("/poster.pdf", A4_POINTS), ("/leaflet.pdf", A5_POINTS)])
def test_poster_and_leaflet_are_public_pdfs_whose_qr_code_is_the_join_url(app, tmp_path, path, size):
    """R1: anyone can download them; A4 and A5; the QR code decodes to <base URL>/join; the text has the forum's
    name, the three lines, the short join address and the contact address."""
    response = app.test_client().get(path)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    pdf = response.get_data()
    assert pdf.startswith(b"%PDF-")
    assert page_size(pdf, tmp_path) == size
    assert qr_codes(pdf, tmp_path) == ["https://forum.test/join"]
    text = pdf_text(pdf, tmp_path)
    assert "Test Parent Carer Forum" in text
    assert "forum.test/join" in text and "https://" not in text
    assert all(" ".join(line.split()) in text for line in DEFAULT_JOINING_LINES)
    assert "hello@forum.test" in text
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"


@pytest.mark.parametrize("database_uri", ["sqlite"], indirect=True)
def test_the_qr_code_still_reads_when_printed_small(app, tmp_path):
    """R1: the leaflet's QR code decodes from a 72 dpi rendering too (a poor photocopy, a phone far away)."""
    assert qr_codes(app.test_client().get("/leaflet.pdf").get_data(), tmp_path, dpi=72) == ["https://forum.test/join"]


@pytest.mark.parametrize("database_uri", ["sqlite"], indirect=True)
def test_a_join_address_with_a_path_is_written_in_short_form(make_app, tmp_path):
    """R1: a base URL with www. and a path prints as host/path/join; the QR code keeps the full URL."""
    app = make_app(MAILER_BASE_URL="https://www.northshire.example/news/")
    pdf = app.test_client().get("/poster.pdf").get_data()
    assert "northshire.example/news/join" in pdf_text(pdf, tmp_path)
    assert qr_codes(pdf, tmp_path) == ["https://www.northshire.example/news/join"]


def test_the_reach_page_edits_the_three_lines_and_the_pdfs_follow(app, clock, tmp_path):
    """R1/V6: /admin/reach shows the preview and links; saved lines and a new forum name print at once."""
    client = logged_in_admin(app, clock)
    page = client.get("/admin/reach").get_data(as_text=True)
    assert 'src="/poster.pdf"' in page and 'href="/leaflet.pdf"' in page and "forum.test/join" in page
    lines = {"line_1": "Hear about SEND news first.", "line_2": "Come to our coffee mornings.", "line_3": ""}
    response = admin_post(client, "/admin/reach", "/admin/reach/lines", lines)
    assert response.status_code == 303
    admin_post(client, "/admin/settings", "/admin/settings",
               {"forum_name": "Northshire Forum", "contact_address": "", "privacy_notice_url": "", "footer_line": "",
                "undo_seconds": "60"})
    text = pdf_text(app.test_client().get("/leaflet.pdf").get_data(), tmp_path)
    assert "Northshire Forum" in text and "Test Parent Carer Forum" not in text
    assert "Hear about SEND news first." in text and "Come to our coffee mornings." in text
    assert DEFAULT_JOINING_LINES[2] in text  # an empty line is the wording it started with
    assert "Hear about SEND news first." in client.get("/admin/reach").get_data(as_text=True)


@pytest.mark.parametrize("database_uri", ["sqlite"], indirect=True)
def test_a_line_too_long_is_refused_with_a_clear_message(app, clock):
    """R1: a line over 80 characters gets a 400 and its message on the form; nothing changes."""
    client = logged_in_admin(app, clock)
    response = admin_post(client, "/admin/reach", "/admin/reach/lines",
                          {"line_1": "ok", "line_2": "z" * 81, "line_3": "ok"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Line 2 must be 80 characters or fewer." in page and "There is a problem" in page
    assert DEFAULT_JOINING_LINES[0] in client.get("/admin/reach").get_data(as_text=True)


def test_reach_needs_a_login(app: Any) -> None:
    """R1: /admin/reach is for admins; the PDFs are public."""
    response = app.test_client().get("/admin/reach")
    assert response.status_code in (302, 303) and "/admin/login" in response.headers["Location"]
