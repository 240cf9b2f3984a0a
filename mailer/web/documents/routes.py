"""Serve a hosted document: the right type, a safe name, never sniffed as a web page.

The URL is /documents/<public id>/<file name>; the random public id finds the document, the
name is there for people and browsers (any name serves the same file)."""

from __future__ import annotations

from flask import abort, send_file
from flask.typing import ResponseReturnValue

from mailer.announcements.documents import KINDS, download_name, find_document, stored_path
from mailer.extensions import db
from mailer.web.context import current_settings
from mailer.web.documents import bp


@bp.get("/documents/<public_id>/<path:name>")
def document(public_id: str, name: str) -> ResponseReturnValue:
    item = find_document(db.session(), public_id)
    if item is None or item.kind not in KINDS:
        abort(404)
    path = stored_path(current_settings().document_dir, item)
    if not path.is_file():
        abort(404)
    kind = KINDS[item.kind]
    # send_file writes Content-Disposition with an RFC 6266 filename* for non-ASCII names.
    response = send_file(
        path, mimetype=kind.content_type, as_attachment=not kind.inline, download_name=download_name(item),
        conditional=True,
    )
    # Any cache (the reader's, or a shared one at a school or workplace) asks again each time, with
    # the ETag and Last-Modified send_file sets; unchanged, that is a small 304. A document an admin
    # removes is then gone at once, not still served from a cache for an hour.
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # No scripts or styles of its own; object-src must allow the browser's built-in PDF viewer.
    response.headers["Content-Security-Policy"] = "default-src 'none'; object-src 'self'; frame-ancestors 'none'"
    return response
