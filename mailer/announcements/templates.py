"""Announcement templates (issue 9): reusable subject and Markdown that admins start a draft from.

A template is checked like an announcement (length, one-line subject, personal fields) when
saved, so a draft made from it can always be saved too. Using a template copies its text into
a new draft: later edits to the template never change an announcement already written."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.announcements.lifecycle import AnnouncementDraft, checked_draft, create_announcement
from mailer.clock import Clock
from mailer.errors import InvalidInput
from mailer.models import Announcement, AnnouncementTemplate

MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class TemplateDraft:
    name: str
    subject: str
    body_markdown: str


def list_templates(session: Session) -> list[AnnouncementTemplate]:
    return list(session.scalars(select(AnnouncementTemplate).order_by(AnnouncementTemplate.name)))


def find_template(session: Session, template_id: int) -> AnnouncementTemplate | None:
    return session.get(AnnouncementTemplate, template_id)


def create_template(session: Session, draft: TemplateDraft, *, clock: Clock) -> AnnouncementTemplate:
    """Save a new template. Raises InvalidInput (field name, subject or body)."""
    name, subject, body = _checked_template(session, draft, None)
    now = clock.now()
    template = AnnouncementTemplate(name=name, subject=subject, body_markdown=body, created_at=now, updated_at=now)
    session.add(template)
    session.flush()
    return template


def update_template(session: Session, template: AnnouncementTemplate, draft: TemplateDraft, *, clock: Clock) -> None:
    """Change a template; drafts already made from it keep their own text. Raises InvalidInput."""
    template.name, template.subject, template.body_markdown = _checked_template(session, draft, template.id)
    template.updated_at = clock.now()


def delete_template(session: Session, template: AnnouncementTemplate) -> None:
    """Remove a template; announcements made from it are not touched (they hold a copy)."""
    session.delete(template)
    session.flush()


def draft_from_template(
    session: Session, template: AnnouncementTemplate, *, admin_id: int | None, clock: Clock
) -> Announcement:
    """A new draft announcement with the template's subject and body, for the admin to finish."""
    return create_announcement(
        session,
        AnnouncementDraft(subject=template.subject, body_markdown=template.body_markdown),
        admin_id=admin_id,
        clock=clock,
    )


def _checked_template(session: Session, draft: TemplateDraft, own_id: int | None) -> tuple[str, str, str]:
    name = " ".join((draft.name or "").split())
    if not name:
        raise InvalidInput("Give the template a name.", field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"The name must be {MAX_NAME_LENGTH} characters or fewer.", field="name")
    clash = session.scalar(
        select(AnnouncementTemplate.id).where(
            func.lower(AnnouncementTemplate.name) == name.lower(),
            AnnouncementTemplate.id != (own_id or 0),
        )
    )
    if clash is not None:
        raise InvalidInput(f"There is already a template called {name}. Choose another name.", field="name")
    subject, body = checked_draft(AnnouncementDraft(subject=draft.subject, body_markdown=draft.body_markdown))
    return name, subject, body
