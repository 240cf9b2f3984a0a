"""The printable poster (A4) and leaflet (A5) that bring parents to the join page (R1, issue 20 part 4).

Drawn with ReportLab (pure Python: no system libraries, which suits one small server) in its built-in
Helvetica, black on white for any printer and photocopier: the forum's name, "Join our free email list",
the three lines on what joining gives, a QR code for <base URL>/join (made by segno, drawn as vector
squares so it stays sharp at any size), the join address written out in short form, and how to leave.
The leaflet is the poster scaled to A5, so both say the same thing."""

from __future__ import annotations

import enum
import functools
import io
from collections.abc import Sequence
from urllib.parse import urlsplit

import segno
from reportlab.lib.colors import black, white
from reportlab.lib.pagesizes import A4, A5
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from mailer.members.forum_details import ForumDetails

REGULAR, BOLD = "Helvetica", "Helvetica-Bold"
# Helvetica as built into every PDF reader covers Latin-1 (WinAnsi); other letters are replaced, not dropped.
_ENCODABLE = "cp1252"


class PrintSize(enum.StrEnum):
    POSTER = "poster"  # A4
    LEAFLET = "leaflet"  # A5

    @property
    def page(self) -> tuple[float, float]:
        width, height = A4 if self is PrintSize.POSTER else A5
        return float(width), float(height)

    @property
    def label(self) -> str:
        return "A4 poster" if self is PrintSize.POSTER else "A5 leaflet"


def join_url(base_url: str) -> str:
    """The join page's full address, for the QR code."""
    return base_url.rstrip("/") + "/join"


def short_join_address(base_url: str) -> str:
    """The join address as people type it: no https://, no www., e.g. "forum.example/join"."""
    parts = urlsplit(base_url.rstrip("/"))
    host = parts.netloc.removeprefix("www.")
    return f"{host}{parts.path}/join"


@functools.lru_cache(maxsize=16)
def render_pdf(details: ForumDetails, base_url: str, size: PrintSize) -> bytes:
    """The poster or leaflet as PDF bytes, one page. Kept for the same details (they are frozen), so a public
    link shared widely costs one drawing per change, not one per download."""
    width, height = size.page
    scale = width / A4[0]  # the leaflet is the poster at A5
    margin = 18 * mm * scale
    text_width = width - 2 * margin
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=size.page, pageCompression=1)
    canvas.setTitle(f"{_printable(details.forum_name)}: join our email list ({size.label})")
    canvas.setAuthor(_printable(details.forum_name))
    canvas.setSubject(f"Join at {short_join_address(base_url)}")

    # A black band with the forum's name in white: the first thing seen from across a room.
    name_size = 34 * scale
    name_lines = _wrap(details.forum_name, BOLD, name_size, text_width)
    band_height = len(name_lines) * name_size * 1.15 + 2 * margin * 0.8
    canvas.setFillColor(black)
    canvas.rect(0, height - band_height, width, band_height, stroke=0, fill=1)
    canvas.setFillColor(white)
    y = height - margin * 0.8 - name_size
    for line in name_lines:
        canvas.setFont(BOLD, name_size)
        canvas.drawString(margin, y, line)
        y -= name_size * 1.15

    canvas.setFillColor(black)
    y = height - band_height - margin - 30 * scale
    y = _draw_lines(canvas, ["Join our free email list"], BOLD, 30 * scale, margin, y, text_width)
    y -= 10 * scale
    y = _draw_lines(canvas, ["Get our news by email, even if you do not use social media."], REGULAR, 18 * scale,
                    margin, y, text_width)
    y -= 14 * scale
    for line in details.joining_lines:
        y = _draw_bullet(canvas, line, 20 * scale, margin, y, text_width)
        y -= 8 * scale

    # The QR code, centred, as vector squares with the 4-module quiet zone readers need.
    qr = segno.make(join_url(base_url), error="m", micro=False)
    matrix = list(qr.matrix)
    modules = len(matrix)
    qr_side = min(72 * mm * scale, y - margin - 110 * scale)
    module = qr_side / (modules + 8)
    left = (width - qr_side) / 2
    top = y - 10 * scale
    canvas.setFillColor(white)
    canvas.rect(left, top - qr_side, qr_side, qr_side, stroke=0, fill=1)
    canvas.setFillColor(black)
    for row_index, row in enumerate(matrix):
        for column_index, dark in enumerate(row):
            if dark:
                canvas.rect(
                    left + (column_index + 4) * module,
                    top - (row_index + 5) * module,
                    module,
                    module,
                    stroke=0,
                    fill=1,
                )
    y = top - qr_side - 22 * scale
    canvas.setFont(REGULAR, 16 * scale)
    canvas.drawCentredString(width / 2, y, "Scan the code with your phone's camera, or go to:")
    y -= 34 * scale
    canvas.setFont(BOLD, 28 * scale)
    canvas.drawCentredString(width / 2, y, _fit(short_join_address(base_url), BOLD, 28 * scale, text_width))

    footer = [
        "It is free. You choose what you get, and every email has a link to stop.",
        f"Questions? Email {details.contact_address}",
    ]
    if details.footer_line:
        footer.append(details.footer_line)
    y = margin + (len(footer) - 1) * 15 * scale
    for line in footer:
        canvas.setFont(REGULAR, 12 * scale)
        canvas.drawCentredString(width / 2, y, _fit(line, REGULAR, 12 * scale, text_width))
        y -= 15 * scale
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def _printable(text: str) -> str:
    return text.encode(_ENCODABLE, errors="replace").decode(_ENCODABLE)


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    return simpleSplit(_printable(text), font, size, width) or [""]


def _fit(text: str, font: str, size: float, width: float) -> str:
    """One line that fits `width`, shortened with an ellipsis if it must be."""
    text = _printable(text)
    while text and stringWidth(text, font, size) > width:
        text = text[:-2] + "\u2026"
    return text


def _draw_lines(canvas: Canvas, lines: Sequence[str], font: str, size: float, x: float, y: float,
                width: float) -> float:
    for paragraph in lines:
        for line in _wrap(paragraph, font, size, width):
            canvas.setFont(font, size)
            canvas.drawString(x, y, line)
            y -= size * 1.25
    return y


def _draw_bullet(canvas: Canvas, text: str, size: float, x: float, y: float, width: float) -> float:
    indent = size * 1.2
    canvas.circle(x + size * 0.3, y + size * 0.33, size * 0.18, stroke=0, fill=1)
    for line in _wrap(text, REGULAR, size, width - indent):
        canvas.setFont(REGULAR, size)
        canvas.drawString(x + indent, y, line)
        y -= size * 1.25
    return y
