"""The only module-level app (P1): `flask --app wsgi ...`, gunicorn `wsgi:app`, waitress `wsgi:app`."""

from mailer import create_app
from mailer.config import ConfigurationError

try:
    app = create_app()
except ConfigurationError as exc:  # one clear line for the operator, not a traceback
    raise SystemExit(f"mailer: refusing to start: {exc}") from None
