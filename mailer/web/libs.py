"""Flask-WTF and Flask-Login as the views use them, with types mypy can check.

Neither library ships type hints (no py.typed, no stubs in typeshed), so mypy would see every form
and `current_user` as Any. Under TYPE_CHECKING this module declares the few names mailer.web uses,
with the types the libraries document (WTForms' own stubs do the rest); at run time each name is
the library's own object, unchanged. Views import these names from here, not from the libraries."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from dataclasses import dataclass, field
    from datetime import timedelta
    from typing import Any, TypeVar

    from flask.typing import ResponseReturnValue
    from markupsafe import Markup
    from werkzeug.datastructures import FileStorage
    from werkzeug.exceptions import BadRequest
    from wtforms import Form
    from wtforms.fields import FileField as WTFormsFileField
    from wtforms.validators import DataRequired

    from mailer.models import Admin

    View = TypeVar("View", bound=Callable[..., Any])

    class FlaskForm(Form):
        """flask_wtf.FlaskForm: a WTForms form that reads the request and checks its CSRF token."""

        def is_submitted(self) -> bool: ...
        def validate_on_submit(self, extra_validators: Mapping[str, Sequence[Any]] | None = None) -> bool: ...
        def hidden_tag(self, *fields: Any) -> Markup: ...

    @dataclass
    class SelectChoice:
        """wtforms.SelectChoice (WTForms 3.3): one option of a select, radio or checkbox field.
        types-WTForms 3.2 predates it, so it is declared here."""

        value: Any
        label: str | None = None
        render_kw: dict[str, Any] = field(default_factory=dict)
        optgroup: str | None = None

    class FileField(WTFormsFileField):
        """flask_wtf.file.FileField. Its data is a FileStorage once FileRequired has passed (None before:
        the views read it only after validate_on_submit)."""

        data: FileStorage

    class FileRequired(DataRequired):
        """flask_wtf.file.FileRequired: the field must hold an uploaded file."""

    class CSRFError(BadRequest):
        """flask_wtf.csrf.CSRFError: a missing or wrong CSRF token (a 400)."""

    def validate_csrf(
        data: str | None, secret_key: str | None = None, time_limit: int | None = None, token_key: str | None = None
    ) -> None:
        """Raise wtforms.ValidationError unless `data` is a valid CSRF token for this session."""

    def csrf_exempt(view: View) -> View:
        """CSRFProtect.exempt of the app's `csrf`: the view checks its own token (or needs none)."""

    def login_required(func: View) -> View: ...
    def login_user(
        user: Admin, remember: bool = False, duration: timedelta | None = None, force: bool = False, fresh: bool = True
    ) -> bool: ...
    def logout_user() -> bool: ...
    def unauthorized() -> ResponseReturnValue:
        """The app's LoginManager.unauthorized(): flash the log-in message and redirect to the log-in page."""

    # Our user_loader returns only Admin, and admin views run after the blueprint's require_login, so
    # there `current_user` is an Admin. Before a log-in it is Flask-Login's anonymous user; the only
    # attribute read then is `is_authenticated`, which both have.
    current_user: Admin
else:
    from flask import current_app
    from flask_login import current_user, login_required, login_user, logout_user
    from flask_wtf import FlaskForm
    from flask_wtf.csrf import CSRFError, validate_csrf
    from flask_wtf.file import FileField, FileRequired
    from wtforms import SelectChoice

    from mailer.extensions import csrf

    csrf_exempt = csrf.exempt

    def unauthorized() -> ResponseReturnValue:
        return current_app.login_manager.unauthorized()


__all__ = [
    "CSRFError",
    "FileField",
    "FileRequired",
    "FlaskForm",
    "SelectChoice",
    "csrf_exempt",
    "current_user",
    "login_required",
    "login_user",
    "logout_user",
    "unauthorized",
    "validate_csrf",
]
