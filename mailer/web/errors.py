"""Domain exceptions and HTTP errors become clear pages, in one table; never a 500 for bad input.

Inside /admin/ the page keeps the admin menu, puts the problem in an error summary (the GOV.UK pattern)
and links back to where the admin was and to the dashboard (issue 18.8), never only to the public home page."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BuildError

from mailer.errors import (
    AdminGone,
    InvalidInput,
    LastOwner,
    LinkUnusable,
    MailerError,
    NotPending,
    NotPermitted,
    StorageFull,
    TokenExpired,
    TokenInvalid,
    TransitionRefused,
    WrongState,
)
from mailer.extensions import db
from mailer.web.libs import CSRFError

log = logging.getLogger(__name__)

PAGES: dict[type[MailerError], tuple[int, str]] = {
    TokenExpired: (410, "errors/link_expired.html"),
    TokenInvalid: (400, "errors/link_invalid.html"),
    NotPending: (409, "errors/not_pending.html"),
    InvalidInput: (400, "errors/bad_request.html"),
    TransitionRefused: (409, "errors/transition_refused.html"),  # before WrongState: the first match wins
    WrongState: (409, "errors/bad_request.html"),
    StorageFull: (507, "errors/storage_full.html"),
    LinkUnusable: (410, "errors/admin_link.html"),
    LastOwner: (409, "errors/admin_refused.html"),
    AdminGone: (404, "errors/admin_refused.html"),

    NotPermitted: (403, "errors/bad_request.html"),
}

HTTP_TITLES = {
    400: "Something in the request was not right",
    404: "Page not found",
    405: "That is not how this page works",
    413: "That was too much to send",
    429: "Too many attempts",
}


def error_page_context() -> dict[str, Any]:
    """Which layout an error page uses, and where its links go: inside /admin/ the admin's own pages."""
    if not request.path.startswith("/admin/"):
        return {"layout": "base.html", "in_admin": False}
    back_url, back_text = None, None
    values = request.view_args or {}
    try:
        if "announcement_id" in values:
            back_url = url_for("admin.announcement", announcement_id=values["announcement_id"])
            back_text = "Back to the announcement"
        elif (request.endpoint or "").startswith("admin.import_"):
            back_url, back_text = url_for("admin.import_members"), "Back to importing members"
        elif "member_id" in values:
            back_url, back_text = url_for("admin.member", member_id=values["member_id"]), "Back to the member"
    except BuildError:  # an error page must never fail over a link; the dashboard link is enough
        back_url, back_text = None, None
    return {"layout": "admin/base.html", "in_admin": True, "back_url": back_url, "back_text": back_text}


def register_error_pages(app: Flask) -> None:
    @app.errorhandler(MailerError)
    def domain_error(exc: MailerError) -> ResponseReturnValue:
        db.session.rollback()
        status, page = next(
            (value for kind, value in PAGES.items() if isinstance(exc, kind)), (400, "errors/bad_request.html")
        )
        return render_template(page, error=exc, **error_page_context()), status

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> ResponseReturnValue:
        return render_template("errors/csrf.html", **error_page_context()), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        status = exc.code or 500
        response = exc.get_response()
        body = render_template(
            "errors/http.html",
            status=status,
            title=HTTP_TITLES.get(status, exc.name),
            description=exc.description,
            **error_page_context(),
        )
        response.set_data(body)
        response.content_type = "text/html; charset=utf-8"
        return response

    @app.errorhandler(500)
    def server_error(exc: Exception) -> ResponseReturnValue:
        db.session.rollback()
        return render_template("errors/server.html", **error_page_context()), 500
