"""The poster and leaflet as PDF (R1, issue 20 part 4): public, so a school or surgery can print them from a
link. Drawn by mailer.members.posters from the forum's details as they are now."""

from __future__ import annotations

from flask import Response
from flask.typing import ResponseReturnValue

from mailer.members.posters import PrintSize, render_pdf
from mailer.web.context import current_forum_details, current_settings
from mailer.web.public import bp


@bp.get("/poster.pdf")
def poster() -> ResponseReturnValue:
    return pdf_response(PrintSize.POSTER)


@bp.get("/leaflet.pdf")
def leaflet() -> ResponseReturnValue:
    return pdf_response(PrintSize.LEAFLET)


def pdf_response(size: PrintSize) -> Response:
    body = render_pdf(current_forum_details(), current_settings().base_url, size)
    response = Response(body, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{size.value}.pdf"'
    response.headers["Cache-Control"] = "no-cache"  # a changed name or line shows at the next download
    # The admin's reach page shows it in a frame of this site; other sites still cannot frame it.
    response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'self'"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response
