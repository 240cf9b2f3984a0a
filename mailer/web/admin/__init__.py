"""Admin pages: login, announcements (compose, preview, test, schedule, progress, report)."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from . import routes  # noqa: E402,F401  (registers the views on bp)
from . import members  # noqa: E402,F401
from . import bounces  # noqa: E402,F401
from . import announcement_templates  # noqa: E402,F401
from . import documents  # noqa: E402,F401
