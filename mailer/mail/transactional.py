"""What each transactional mail says and where its links go (confirm, already a member, welcome).

Each kind is rendered once per sender and filled in per recipient (see emails.py)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from jinja2 import Environment

from mailer.clock import Clock
from mailer.mail.emails import MailSettings, MailTemplate, render_template
from mailer.mail.prebuilt import PrebuiltMessage, row_message_id
from mailer.mail.tokens import ADMIN_LINK_LIFETIMES, Purpose, TokenMaker
from mailer.models import MailKind

if TYPE_CHECKING:
    from mailer.settings import Settings

SLOTS = ["name", "confirm_url", "unsubscribe_url", "preferences_url", "action_url"]
NAME_FALLBACK = "parent or carer"
# Mail to admins (V4) carrying one link: the token names the link's row key (mailer.admins.links), version 0.
ADMIN_LINK_MAIL = {
    MailKind.ADMIN_INVITATION: Purpose.ADMIN_INVITATION,
    MailKind.PASSWORD_RESET: Purpose.PASSWORD_RESET,
    MailKind.EMAIL_CHANGE: Purpose.EMAIL_CHANGE,
}


class TransactionalMail:
    """Builds transactional messages; holds the rendered templates for one run of the worker."""

    def __init__(
        self, jinja: Environment, settings: MailSettings, *, secret_key: str, confirm_days: int, clock: Clock,
        feedback_id: str = "",
    ) -> None:
        self._jinja = jinja
        self._settings = settings
        self._secret_key = secret_key
        self._confirm_days = confirm_days
        self._clock = clock
        self._feedback_id = feedback_id
        self._templates: dict[MailKind, MailTemplate] = {}
        self._prebuilt = PrebuiltMessage(settings, transactional=True)
        self._tokens = TokenMaker(secret_key, clock)

    @classmethod
    def from_settings(cls, jinja: Environment, settings: Settings, *, clock: Clock) -> TransactionalMail:
        """The builder the app's settings describe."""
        return cls(
            jinja,
            settings.mail_settings,
            secret_key=settings.secret_key,
            confirm_days=settings.confirm_max_age_days,
            clock=clock,
            feedback_id=settings.feedback_id,
        )

    def build(
        self, kind: MailKind, *, to_address: str, to_name: str, link_key: str, token_version: int, now: datetime,
        outbox_id: int | None = None,
    ) -> bytes:
        """The message as it goes on the wire, from the kind's template rendered once; with the outbox row's
        id, its Message-ID is the same each time that row is sent (E8)."""
        message_id = None
        if outbox_id is not None:
            message_id = row_message_id(
                "outbox", outbox_id, seed=link_key or to_address, domain=self._settings.message_id_domain
            )
        return self._prebuilt.render_template(
            self._template(kind),
            self._values(kind, to_name, link_key, token_version),
            to_address=to_address,
            to_name=to_name,
            now=now,
            message_id=message_id,
            # Gmail's complaint reports per kind of mail: campaign:type:sender
            headers={"Feedback-ID": f"{kind.value}:transactional:{self._feedback_id}"} if self._feedback_id else None,
        )

    def link(self, purpose: Purpose, link_key: str, token_version: int) -> str:
        return f"{self._settings.base_url}/{purpose.value}/{self._tokens.make(purpose, link_key, token_version)}"

    def _values(self, kind: MailKind, name: str, link_key: str, version: int) -> dict[str, str]:
        values = {"name": name or NAME_FALLBACK}
        if kind in ADMIN_LINK_MAIL:
            values["action_url"] = self.link(ADMIN_LINK_MAIL[kind], link_key, 0)
        if kind is MailKind.CONFIRM:
            values["confirm_url"] = self.link(Purpose.CONFIRM, link_key, version)
        if kind in (MailKind.WELCOME, MailKind.ALREADY_MEMBER, MailKind.PREFERENCES_LINK):
            values["unsubscribe_url"] = self.link(Purpose.UNSUBSCRIBE, link_key, version)
            values["preferences_url"] = self.link(Purpose.PREFERENCES, link_key, version)
        return values

    def _template(self, kind: MailKind) -> MailTemplate:
        if kind not in self._templates:
            self._templates[kind] = render_template(
                self._jinja,
                kind.value,
                self._settings,
                SLOTS,
                confirm_days=self._confirm_days,
                link_hours={p.value: int(d.total_seconds() // 3600) for p, d in ADMIN_LINK_LIFETIMES.items()},
                join_url=f"{self._settings.base_url}/join",
                footer=self._jinja.get_template("email/transactional_footer.md").render(
                    settings=self._settings, kind=kind.value
                ),
            )
        return self._templates[kind]
