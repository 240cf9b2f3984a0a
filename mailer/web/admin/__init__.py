"""Admin pages: login, announcements (compose, preview, test, schedule, progress, report)."""

from flask import Blueprint

from mailer.web.auth import protect

bp = Blueprint("admin", __name__, url_prefix="/admin")

from mailer.web.admin import (  # noqa: E402  the views register on bp, so it must exist first
    account,  # noqa: F401
    admins,  # noqa: F401
    announcement_templates,  # noqa: F401
    audit,  # noqa: F401
    bounces,  # noqa: F401
    documents,  # noqa: F401
    drafting,  # noqa: F401
    forum_settings,  # noqa: F401
    groups,  # noqa: F401
    member_new,  # noqa: F401
    members,  # noqa: F401
    reach,  # noqa: F401
    reach_embed,  # noqa: F401
    routes,  # noqa: F401  (registers the views on bp)
)

# After the views' own hooks (require_login in routes.py): the log-in check, then the role (issue 19).
protect(bp)
