"""The web layer: blueprints, error pages and response headers. Only create_app imports it."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, abort, request

from mailer.web.errors import register_error_pages
from mailer.web.numbers import DatabaseIdConverter

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)


def register_web(app: Flask) -> None:
    from mailer.extensions import login_manager
    from mailer.web import auth  # noqa: F401  (registers the admin loader)
    from mailer.web.admin import bp as admin_bp
    from mailer.web.archive import bp as archive_bp
    from mailer.web.documents import bp as documents_bp
    from mailer.web.member import bp as member_bp
    from mailer.web.public import bp as public_bp

    app.url_map.converters["int"] = DatabaseIdConverter
    app.before_request(_refuse_nul_characters)
    app.register_blueprint(public_bp)
    app.register_blueprint(archive_bp)
    app.register_blueprint(documents_bp)
    app.register_blueprint(member_bp)
    app.register_blueprint(admin_bp)
    login_manager.login_view = "admin.login"
    login_manager.login_message = "Log in to see that page."
    register_error_pages(app)
    app.after_request(_security_headers)
    app.jinja_env.globals["field_attrs"] = field_attrs
    app.jinja_env.globals["unsubscribe_token"] = _unsubscribe_token
    app.context_processor(_page_settings)


def _page_settings() -> dict[str, Any]:
    """Pages show the forum's name, contact address and limits from `settings`, never from config; the forum's
    details an owner set on /admin/settings are laid over the configured ones (V6)."""
    from mailer.web.context import forum_settings

    return {"settings": forum_settings()}


def _unsubscribe_token(member: Any) -> str:
    from mailer.mail.tokens import Purpose, make_token
    from mailer.web.context import clock, current_settings

    return make_token(
        current_settings().secret_key, Purpose.UNSUBSCRIBE, member.link_key, member.token_version, clock=clock()
    )


def _refuse_nul_characters() -> None:
    """No form or query value may hold NUL: PostgreSQL can neither store nor compare one,
    so it would surface as a 500 wherever the value reaches a query."""
    for values in (request.args, request.form):
        if any("\x00" in value for _, items in values.lists() for value in items):
            abort(400, "The form contained a character that is not allowed. Remove it and try again.")


def field_attrs(field: Any, *, has_hint: bool = False, **attrs: Any) -> dict[str, Any]:
    """HTML attributes for an input: skip unset ones, tie hint and error to it for screen readers."""
    described = [f"{field.id}-hint"] if has_hint else []
    if field.errors:
        described.append(f"{field.id}-error")
        attrs["aria-invalid"] = "true"
    if described:
        attrs["aria-describedby"] = " ".join(described)
    return {key: value for key, value in attrs.items() if value is not None}


def _security_headers(response: Response) -> Response:
    """Headers every page gets; token pages also get no-store (their URLs are secrets)."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]:
        response.headers.setdefault("X-Frame-Options", "DENY")  # not on /join/embed: its CSP lists who may frame it
    if request.view_args and "token" in request.view_args:
        response.headers["Cache-Control"] = "no-store"
    return response
