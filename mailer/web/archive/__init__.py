"""The public archive of announcements an admin marked public (J7)."""

from flask import Blueprint

bp = Blueprint("archive", __name__)

from mailer.web.archive import routes  # noqa: E402,F401
