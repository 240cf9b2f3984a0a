"""The only module-level app (P1): `flask --app wsgi ...`, gunicorn `wsgi:app`, waitress `wsgi:app`.

A configuration that must not run (a weak key in production) is one line and exit code 3; any runner
sees a non-zero exit."""

from mailer import create_app_or_exit

app = create_app_or_exit()
