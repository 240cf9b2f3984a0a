"""The announcement email (E1-E6): the admin's Markdown in the accessible layout, with a footer
saying who sent it and why, unsubscribe and preferences links, and the one-click headers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from jinja2 import Environment

from mailer.clock import Clock
from mailer.mail.document_links import DocumentLink, markdown_section
from mailer.mail.emails import MailSettings, MailTemplate, compose_template
from mailer.mail.personal_fields import mark_placeholders, member_values
from mailer.mail.prebuilt import PrebuiltMessage, row_message_id
from mailer.mail.tokens import Purpose, TokenMaker, make_web_view_token

if TYPE_CHECKING:
    from mailer.settings import Settings

SLOTS = ["name", "unsubscribe_url", "preferences_url", "groups"]
TEST_PREFIX = "[Test] "


@dataclass(frozen=True)
class AnnouncementContent:
    """What the engine needs of an announcement once its rows are read: plain values."""

    id: int
    subject: str
    body_markdown: str
    updated_at: datetime
    documents: tuple[DocumentLink, ...] = ()  # linked in a "Documents" section at the end (issue 9)


class AnnouncementMail:
    """Renders each announcement once and fills it in per member."""

    def __init__(
        self,
        jinja: Environment,
        settings: MailSettings,
        *,
        secret_key: str,
        clock: Clock,
        unsubscribe_mailto: str = "",
        feedback_id: str = "",
    ) -> None:
        self._jinja = jinja
        self._settings = settings
        self._secret_key = secret_key
        self._tokens = TokenMaker(secret_key, clock)
        self._mailto = unsubscribe_mailto
        self._feedback_id = feedback_id
        self._templates: dict[tuple[int, datetime], MailTemplate] = {}
        self._contents: dict[tuple[int, datetime], AnnouncementContent] = {}
        self._for_members = PrebuiltMessage(
            settings, transactional=False, constant_headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        )
        self._for_tests = PrebuiltMessage(settings, transactional=True)

    @classmethod
    def from_settings(cls, jinja: Environment, settings: Settings, *, clock: Clock) -> AnnouncementMail:
        """The renderer the app's settings describe (the worker, previews and test sends use the same)."""
        return cls(
            jinja,
            settings.mail_settings,
            secret_key=settings.secret_key,
            clock=clock,
            unsubscribe_mailto=settings.unsubscribe_mailto,
            feedback_id=settings.feedback_id,
        )

    def known_content(self, announcement_id: int, updated_at: datetime) -> AnnouncementContent | None:
        """Content read earlier in this renderer's life, if the announcement has not changed since."""
        return self._contents.get((announcement_id, updated_at))

    def remember_content(self, content: AnnouncementContent) -> None:
        if len(self._contents) >= 50:
            self._contents.clear()
        self._contents[(content.id, content.updated_at)] = content

    def template(self, content: AnnouncementContent) -> MailTemplate:
        key = (content.id, content.updated_at)
        if key not in self._templates:
            slots = {name: f"MAILERSLOT{i}X" for i, name in enumerate(SLOTS)}
            footer = self._jinja.get_template("email/announcement_footer.md").render(
                settings=self._settings, slot=slots
            )
            # Placeholders become slot markers before Markdown runs: a member's name is never Markdown.
            self._templates[key] = compose_template(
                self._jinja,
                mark_placeholders(content.subject, slots),
                mark_placeholders(content.body_markdown, slots)
                + markdown_section(content.documents, self._settings.base_url),
                self._settings,
                slots,
                footer=footer,
                lead=("View in your browser", self.web_view_url(content)),
                preheader=True,
            )
        return self._templates[key]

    def web_view_url(self, content: AnnouncementContent) -> str:
        """Where "View in your browser" goes (issue 17.4): the announcement's signed web view, the same for
        every member, with nothing of theirs in it. An announcement is only put in the public archive once
        it has been sent (J7), so the link cannot name the archive page; it redirects there once it is public."""
        return f"{self._settings.base_url}/archive/view/{make_web_view_token(self._secret_key, content.id)}"

    def links(self, link_key: str, token_version: int) -> dict[str, str]:
        base = self._settings.base_url
        return {
            "unsubscribe_url": f"{base}/unsubscribe/{self._tokens.make(Purpose.UNSUBSCRIBE, link_key, token_version)}",
            "preferences_url": f"{base}/preferences/{self._tokens.make(Purpose.PREFERENCES, link_key, token_version)}",
        }

    def build_for_member(
        self,
        content: AnnouncementContent,
        *,
        link_key: str,
        token_version: int,
        to_address: str,
        to_name: str,
        now: datetime,
        group_names: Sequence[str] = (),
        delivery_id: int | None = None,
    ) -> bytes:
        """The message as it goes on the wire (E1-E6), from the announcement rendered once;
        only the member's values and links are put in here (issue 9: no MIME build per member).
        With the delivery row's id, its Message-ID is the same each time that row is sent (E8)."""
        links = self.links(link_key, token_version)
        unsubscribe = f"<{links['unsubscribe_url']}>"
        if self._mailto:
            unsubscribe += f", <mailto:{self._mailto}?subject=unsubscribe>"
        headers = {"List-Unsubscribe": unsubscribe}
        if self._feedback_id:  # Gmail's complaint reports per announcement: campaign:type:sender
            headers["Feedback-ID"] = f"a{content.id}:announcement:{self._feedback_id}"
        return self._for_members.render_template(
            self.template(content),
            {**member_values(to_name, group_names), **links},
            to_address=to_address,
            to_name=to_name,
            now=now,
            headers=headers,
            message_id=None if delivery_id is None else row_message_id(
                "delivery", delivery_id, seed=link_key, domain=self._settings.message_id_domain
            ),
        )

    def sample(
        self, content: AnnouncementContent, *, to_name: str, group_names: Sequence[str] = ()
    ) -> tuple[str, str, str]:
        """(subject, html, text) as a member would see it, with example links: for previews and tests."""
        base = self._settings.base_url
        return self.template(content).fill(
            {
                **member_values(to_name, group_names),
                "unsubscribe_url": f"{base}/unsubscribe/example-link",
                "preferences_url": f"{base}/preferences/example-link",
            }
        )

    def build_test(
        self, content: AnnouncementContent, *, to_address: str, now: datetime, outbox_id: int | None = None
    ) -> bytes:
        """A test send to an admin: marked as a test, links are examples that change nothing. With the
        outbox row's id, its Message-ID is the same each time that row is sent (E8)."""
        subject, html_body, text_body = self.sample(content, to_name="")
        return self._for_tests.render(
            to_address=to_address,
            to_name="",
            subject=TEST_PREFIX + subject,
            html_body=html_body,
            text_body=text_body,
            now=now,
            message_id=None if outbox_id is None else row_message_id(
                "outbox", outbox_id, seed=to_address, domain=self._settings.message_id_domain
            ),
        )
