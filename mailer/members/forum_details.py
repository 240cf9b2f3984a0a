"""The forum's details as owners set them on /admin/settings (V6, R1, issue 20), laid over the configuration.

Settings is parsed once at start-up and frozen; the forum's name, contact address, privacy notice link,
footer line, undo window and the poster's three lines can change while the app runs. They are kept in
one row (mailer.models.ForumDetailsRow); a value not stored there (NULL) is the configured one
(MAILER_FORUM_NAME, MAILER_CONTACT_ADDRESS, MAILER_PRIVACY_NOTICE_URL, MAILER_FOOTER_LINE,
MAILER_UNDO_SECONDS). Pages read them on every request and the worker on every tick, so a change shows
on the next page and in the next email: `forum_details(session, settings).overlay(settings)`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.errors import InvalidInput
from mailer.members.addresses import normalise_address
from mailer.models import FORUM_DETAILS_ROW_ID, ForumDetailsRow
from mailer.text import has_control_characters

if TYPE_CHECKING:
    from mailer.settings import Settings

MAX_UNDO_SECONDS = 600
MAX_FORUM_NAME = 100
MAX_FOOTER_LINE = 200
MAX_PRIVACY_URL = 500
MAX_JOINING_LINE = 80
DEFAULT_JOINING_LINES = (
    "News about services for children with SEND, in plain English.",
    "Invitations to coffee mornings, training and events.",
    "A say in how local services are run.",
)


@dataclass(frozen=True)
class ForumDetails:
    """The values in use now: stored ones where an owner set them, configured ones elsewhere."""

    forum_name: str
    contact_address: str
    privacy_notice_url: str
    footer_line: str
    undo_seconds: int
    joining_lines: tuple[str, str, str]

    def overlay(self, settings: Settings) -> Settings:
        """`settings` with these values in place of the configured ones: pages and mail built from the result
        (mail_settings, membership_policy, the consent wording) show them."""
        return dataclasses.replace(
            settings,
            forum_name=self.forum_name,
            contact_address=self.contact_address,
            privacy_notice_url=self.privacy_notice_url,
            footer_line=self.footer_line,
            undo_seconds=self.undo_seconds,
        )


@dataclass(frozen=True)
class DetailsInput:
    """What the settings and reach forms send; an empty value means "as configured" (or the default lines)."""

    forum_name: str | None = None
    contact_address: str | None = None
    privacy_notice_url: str | None = None
    footer_line: str | None = None
    undo_seconds: str | None = None  # as typed: whole seconds from 0 to MAX_UNDO_SECONDS, empty for the configured
    joining_lines: tuple[str, str, str] | None = None


def configured_undo_seconds(settings: Settings) -> int:
    """MAILER_UNDO_SECONDS: the undo window when an owner has not set one on the forum details page."""
    return int(settings.undo_seconds)


def forum_details(session: Session, settings: Settings) -> ForumDetails:
    """The details in use now (one primary-key read)."""
    row = session.get(ForumDetailsRow, FORUM_DETAILS_ROW_ID)
    stored = row or ForumDetailsRow()
    lines = (stored.joining_line_1, stored.joining_line_2, stored.joining_line_3)
    return ForumDetails(
        forum_name=stored.forum_name or settings.forum_name,
        contact_address=stored.contact_address or settings.contact_address,
        privacy_notice_url=(
            stored.privacy_notice_url if stored.privacy_notice_url is not None else settings.privacy_notice_url
        ),
        footer_line=stored.footer_line if stored.footer_line is not None else settings.footer_line,
        undo_seconds=stored.undo_seconds if stored.undo_seconds is not None else configured_undo_seconds(settings),
        joining_lines=(
            lines[0] or DEFAULT_JOINING_LINES[0],
            lines[1] or DEFAULT_JOINING_LINES[1],
            lines[2] or DEFAULT_JOINING_LINES[2],
        ),
    )


def save_forum_details(session: Session, wanted: DetailsInput, *, settings: Settings, clock: Clock) -> list[str]:
    """Check and store the values given (fields left None in `wanted` are not touched); returns the names of
    the details that changed, for the audit log. A value equal to the configured one is stored as NULL, so a
    later change of configuration still applies to it. Raises InvalidInput naming the field."""
    before = forum_details(session, settings)
    row = session.get(ForumDetailsRow, FORUM_DETAILS_ROW_ID)
    if row is None:
        row = ForumDetailsRow(id=FORUM_DETAILS_ROW_ID)
        session.add(row)
    if wanted.forum_name is not None:
        name = _line(wanted.forum_name, "forum_name", "The forum's name", MAX_FORUM_NAME)
        row.forum_name = None if name in ("", settings.forum_name) else name
    if wanted.contact_address is not None:
        address = _contact(wanted.contact_address)
        row.contact_address = None if address in ("", settings.contact_address) else address
    if wanted.privacy_notice_url is not None:
        url = _privacy_url(wanted.privacy_notice_url)
        row.privacy_notice_url = None if url == settings.privacy_notice_url else url
    if wanted.footer_line is not None:
        footer = _line(wanted.footer_line, "footer_line", "The footer line", MAX_FOOTER_LINE)
        row.footer_line = None if footer == settings.footer_line else footer
    if wanted.undo_seconds is not None:
        seconds = _seconds(wanted.undo_seconds, configured_undo_seconds(settings))
        row.undo_seconds = None if seconds == configured_undo_seconds(settings) else seconds
    if wanted.joining_lines is not None:
        lines = [
            _line(text, f"joining_line_{n}", f"Line {n}", MAX_JOINING_LINE)
            for n, text in enumerate(wanted.joining_lines, start=1)
        ]
        stored = [None if text in ("", DEFAULT_JOINING_LINES[i]) else text for i, text in enumerate(lines)]
        row.joining_line_1, row.joining_line_2, row.joining_line_3 = stored
    after = forum_details(session, settings)
    changed = [item.name for item in dataclasses.fields(ForumDetails) if getattr(before, item.name) != getattr(
        after, item.name)]
    if changed:
        row.updated_at = clock.now()
    session.flush()
    return changed


def _seconds(raw: str, configured: int) -> int:
    text = (raw or "").strip()
    if not text:
        return configured
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_UNDO_SECONDS:
        raise InvalidInput(f"Enter a whole number of seconds from 0 to {MAX_UNDO_SECONDS}.", field="undo_seconds")
    return int(text)


def _line(raw: str, field: str, label: str, maximum: int) -> str:
    value = (raw or "").strip()
    if len(value) > maximum:
        raise InvalidInput(f"{label} must be {maximum} characters or fewer.", field=field)
    if has_control_characters(value):
        raise InvalidInput(f"{label} must be on one line, without control characters.", field=field)
    return value


def _contact(raw: str) -> str:
    value = (raw or "").strip()
    if not value:
        return ""
    try:
        address, _key = normalise_address(value)
    except InvalidInput:
        raise InvalidInput(
            "Enter the contact address as an email address, like hello@example.org.", field="contact_address"
        ) from None
    return address


def _privacy_url(raw: str) -> str:
    value = (raw or "").strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if (
        parts.scheme not in ("https", "http")
        or not parts.netloc
        or len(value) > MAX_PRIVACY_URL
        or has_control_characters(value)
        or " " in value
    ):
        raise InvalidInput(
            "Enter the privacy notice link as a web address starting with https://, or leave it empty to use "
            "the privacy page built in to this site.",
            field="privacy_notice_url",
        )
    return value
