"""What each transactional mail says and where its links go (confirm, already a member, welcome).

Each kind is rendered once per sender and filled in per recipient (see emails.py)."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage

from jinja2 import Environment

from .clock import Clock
from .emails import MailSettings, MailTemplate, build_message, render_template
from .models import MailKind
from .tokens import Purpose, make_token

SLOTS = ["name", "confirm_url", "unsubscribe_url", "preferences_url"]
NAME_FALLBACK = "parent or carer"


class TransactionalMail:
    """Builds transactional messages; holds the rendered templates for one run of the worker."""

    def __init__(
        self, jinja: Environment, settings: MailSettings, *, secret_key: str, confirm_days: int, clock: Clock
    ) -> None:
        self._jinja = jinja
        self._settings = settings
        self._secret_key = secret_key
        self._confirm_days = confirm_days
        self._clock = clock
        self._templates: dict[MailKind, MailTemplate] = {}

    def build(
        self, kind: MailKind, *, to_address: str, to_name: str, member_id: int, token_version: int, now: datetime
    ) -> EmailMessage:
        template = self._template(kind)
        subject, html_body, text_body = template.fill(self._values(kind, to_name, member_id, token_version))
        return build_message(
            self._settings,
            to_address=to_address,
            to_name=to_name,
            subject=subject,
            html_body=html_body,
            text_body=text_body,
            now=now,
            transactional=True,
        )

    def link(self, purpose: Purpose, member_id: int, token_version: int) -> str:
        token = make_token(self._secret_key, purpose, member_id, token_version, clock=self._clock)
        return f"{self._settings.base_url}/{purpose.value}/{token}"

    def _values(self, kind: MailKind, name: str, member_id: int, version: int) -> dict[str, str]:
        values = {"name": name or NAME_FALLBACK}
        if kind is MailKind.CONFIRM:
            values["confirm_url"] = self.link(Purpose.CONFIRM, member_id, version)
        if kind in (MailKind.WELCOME, MailKind.ALREADY_MEMBER, MailKind.PREFERENCES_LINK):
            values["unsubscribe_url"] = self.link(Purpose.UNSUBSCRIBE, member_id, version)
            values["preferences_url"] = self.link(Purpose.PREFERENCES, member_id, version)
        return values

    def _template(self, kind: MailKind) -> MailTemplate:
        if kind not in self._templates:
            self._templates[kind] = render_template(
                self._jinja,
                kind.value,
                self._settings,
                SLOTS,
                confirm_days=self._confirm_days,
                join_url=f"{self._settings.base_url}/join",
                footer=self._jinja.get_template("email/transactional_footer.md").render(settings=self._settings),
            )
        return self._templates[kind]
