"""The only module-level app (P1): `flask --app wsgi ...`, gunicorn `wsgi:app`, waitress `wsgi:app`."""

from mailer import create_app

app = create_app()
