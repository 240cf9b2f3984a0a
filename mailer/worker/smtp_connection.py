"""SMTP connections as the worker opens them: Flask-Mail's MAIL_* settings with our timeout and TLS checks.

mailer.engine.transport takes any opener (a callable returning a connected smtplib.SMTP) and knows
nothing of Flask; this module makes one from the Flask-Mail extension's state."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from typing import Any

from flask_mail import Connection


class TimedConnection(Connection):
    """Flask-Mail's connection, opened with a socket timeout (Flask-Mail has no setting for one)
    and a TLS context that checks the server's certificate (smtplib's default does not)."""

    def __init__(self, mail_state: Any, timeout: float, tls_context: ssl.SSLContext | None = None) -> None:
        super().__init__(mail_state)
        self.timeout = timeout
        self.tls_context = tls_context or ssl.create_default_context()

    def configure_host(self) -> smtplib.SMTP:
        state = self.mail
        if state.use_ssl:
            host: smtplib.SMTP = smtplib.SMTP_SSL(
                state.server, state.port, timeout=self.timeout, context=self.tls_context
            )
        else:
            host = smtplib.SMTP(state.server, state.port, timeout=self.timeout)
        try:
            if state.use_tls:
                host.starttls(context=self.tls_context)
            if state.username and state.password:
                host.login(state.username, state.password)
            host.ehlo_or_helo_if_needed()
        except BaseException:
            host.close()
            raise
        return host


def flask_mail_opener(mail_state: Any, timeout: float, *, ca_file: str | None = None) -> Callable[[], smtplib.SMTP]:
    """Open connections with the MAIL_* settings Flask-Mail holds; `ca_file` trusts a private CA."""
    tls_context = ssl.create_default_context(cafile=ca_file or None)

    def open_connection() -> smtplib.SMTP:
        return TimedConnection(mail_state, timeout, tls_context).configure_host()

    return open_connection
