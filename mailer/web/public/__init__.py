"""Public pages: join, confirm, unsubscribe, privacy notice, health check."""

from flask import Blueprint

bp = Blueprint("public", __name__)

from mailer.web.public import embed, posters, routes  # noqa: E402,F401  (registers the views on bp)
