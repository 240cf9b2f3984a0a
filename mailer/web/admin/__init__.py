"""Admin pages: login, announcements (compose, preview, test, schedule, progress, report)."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from mailer.web.admin import (
    announcement_templates,  # noqa: E402,F401
    bounces,  # noqa: E402,F401
    documents,  # noqa: E402,F401
    members,  # noqa: E402,F401
    routes,  # noqa: E402,F401  (registers the views on bp)
)
