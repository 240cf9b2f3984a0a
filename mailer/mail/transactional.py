"""What each transactional mail says and where its links go (confirm, already a member, welcome).

Each kind is rendered once per sender and filled in per recipient (see emails.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from jinja2 import Environment

from mailer.clock import Clock
from mailer.mail.emails import MailSettings, MailTemplate, render_template
from mailer.mail.personal_fields import groups_value
from mailer.mail.prebuilt import PrebuiltMessage, row_message_id
from mailer.mail.tokens import ADMIN_LINK_LIFETIMES, Purpose, TokenMaker
from mailer.models import MailKind

if TYPE_CHECKING:
    from mailer.settings import Settings

SLOTS = ["name", "confirm_url", "unsubscribe_url", "preferences_url", "groups", "action_url"]
NAME_FALLBACK = "parent or carer"
NO_GROUPS = "the news we send to all members"  # the welcome mail of a member who chose no group (issue 20.6)
CONFIRM_KINDS = (MailKind.CONFIRM, MailKind.CONFIRM_REMINDER)  # carry a confirmation link, to pending members
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
        feedback_id: str = "", reminder_days: int = 0,
    ) -> None:
        self._jinja = jinja
        self._reminder_days = reminder_days  # the confirmation mail says whether one reminder follows
        self._settings = settings
        self._secret_key = secret_key
        self._confirm_days = confirm_days
        self._clock = clock
        self._feedback_id = feedback_id
        self._templates: dict[tuple[MailKind, bool], MailTemplate] = {}
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
            reminder_days=settings.confirm_reminder_days,
        )

    def build(
        self, kind: MailKind, *, to_address: str, to_name: str, link_key: str, token_version: int, now: datetime,
        outbox_id: int | None = None, group_names: Sequence[str] | None = None,
    ) -> bytes:
        """The message as it goes on the wire, from the kind's template rendered once; with the outbox row's
        id, its Message-ID is the same each time that row is sent (E8). `group_names`: the groups the member
        chose, in the join form's order (the welcome mail lists them, issue 20.6); None: not known, and the
        welcome mail says nothing about them rather than something untrue."""
        message_id = None
        if outbox_id is not None:
            message_id = row_message_id(
                "outbox", outbox_id, seed=link_key or to_address, domain=self._settings.message_id_domain
            )
        return self._prebuilt.render_template(
            self._template(kind, with_groups=group_names is not None),
            self._values(kind, to_name, link_key, token_version, group_names or ()),
            to_address=to_address,
            to_name=to_name,
            now=now,
            message_id=message_id,
            # Gmail's complaint reports per kind of mail: campaign:type:sender
            headers={"Feedback-ID": f"{kind.value}:transactional:{self._feedback_id}"} if self._feedback_id else None,
        )

    def link(self, purpose: Purpose, link_key: str, token_version: int) -> str:
        return f"{self._settings.base_url}/{purpose.value}/{self._tokens.make(purpose, link_key, token_version)}"

    def _values(
        self, kind: MailKind, name: str, link_key: str, version: int, group_names: Sequence[str] = ()
    ) -> dict[str, str]:
        values = {"name": name or NAME_FALLBACK}
        if kind in ADMIN_LINK_MAIL:
            values["action_url"] = self.link(ADMIN_LINK_MAIL[kind], link_key, 0)
        if kind is MailKind.WELCOME:
            values["groups"] = groups_value(group_names) if any(group_names) else NO_GROUPS
        if kind in CONFIRM_KINDS:
            values["confirm_url"] = self.link(Purpose.CONFIRM, link_key, version)
        if kind is MailKind.ADDRESS_CONFIRM:  # link_key is the address change's key (V7)
            values["confirm_url"] = self.link(Purpose.ADDRESS_CHANGE, link_key, version)
        if kind in (MailKind.WELCOME, MailKind.WELCOME_ADDED, MailKind.ALREADY_MEMBER, MailKind.PREFERENCES_LINK):
            values["unsubscribe_url"] = self.link(Purpose.UNSUBSCRIBE, link_key, version)
            values["preferences_url"] = self.link(Purpose.PREFERENCES, link_key, version)
        return values

    def _template(self, kind: MailKind, *, with_groups: bool) -> MailTemplate:
        key = (kind, with_groups and kind is MailKind.WELCOME)
        if key not in self._templates:
            self._templates[key] = render_template(
                self._jinja,
                kind.value,
                self._settings,
                SLOTS,
                confirm_days=self._confirm_days,
                link_hours={p.value: int(d.total_seconds() // 3600) for p, d in ADMIN_LINK_LIFETIMES.items()},
                reminder_days=self._reminder_days,
                with_groups=key[1],
                join_url=f"{self._settings.base_url}/join",
                footer=self._jinja.get_template("email/transactional_footer.md").render(
                    settings=self._settings, kind=kind.value
                ),
            )
        return self._templates[key]
