"""Domain exceptions and HTTP errors become clear pages, in one table; never a 500 for bad input."""

from __future__ import annotations

import logging

from flask import Flask, render_template
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

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


def register_error_pages(app: Flask) -> None:
    @app.errorhandler(MailerError)
    def domain_error(exc: MailerError) -> ResponseReturnValue:
        db.session.rollback()
        status, page = next(
            (value for kind, value in PAGES.items() if isinstance(exc, kind)), (400, "errors/bad_request.html")
        )
        return render_template(page, error=exc), status

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> ResponseReturnValue:
        return render_template("errors/csrf.html"), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        status = exc.code or 500
        response = exc.get_response()
        body = render_template(
            "errors/http.html", status=status, title=HTTP_TITLES.get(status, exc.name), description=exc.description
        )
        response.set_data(body)
        response.content_type = "text/html; charset=utf-8"
        return response

    @app.errorhandler(500)
    def server_error(exc: Exception) -> ResponseReturnValue:
        db.session.rollback()
        return render_template("errors/server.html"), 500
