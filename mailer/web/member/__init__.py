"""Members' own pages behind a signed link: preferences, data download, erasure (J5)."""

from flask import Blueprint

bp = Blueprint("member", __name__)

from mailer.web.member import routes  # noqa: E402,F401
