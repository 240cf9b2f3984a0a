"""Hosted documents at stable public URLs (issue 9)."""

from flask import Blueprint

bp = Blueprint("documents", __name__)

from mailer.web.documents import routes  # noqa: E402,F401
