"""Admin pages: login, announcements (compose, preview, test, schedule, progress, report)."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
# Admin pages open to someone not logged in (the log-in page, and the links emailed to admins); modules add theirs.
PUBLIC_ENDPOINTS: set[str] = {"admin.login"}

from mailer.web.admin import (  # noqa: E402  the views register on bp, so it must exist first
    admins,  # noqa: F401
    announcement_templates,  # noqa: F401
    bounces,  # noqa: F401
    documents,  # noqa: F401
    members,  # noqa: F401
    routes,  # noqa: F401  (registers the views on bp)
)
