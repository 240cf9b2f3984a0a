"""The only module-level app (P1): `flask --app wsgi ...`, gunicorn `wsgi:app`, waitress `wsgi:app`."""

import sys

from mailer import create_app
from mailer.config import ConfigurationError

# gunicorn's code for "a worker failed to boot": its master then stops with that reason instead of
# starting the worker again forever with the port open and requests hanging (issue 15). Any other
# runner just sees a non-zero exit.
EXIT_REFUSED_TO_START = 3

try:
    app = create_app()
except ConfigurationError as exc:  # one clear line for the operator, not a traceback
    print(f"mailer: refusing to start: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_REFUSED_TO_START) from None
