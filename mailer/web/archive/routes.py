"""Archive pages show the announcement body only: never a member's name or personal links."""

from __future__ import annotations

from flask import abort, render_template
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from sqlalchemy import Select, select

from mailer.announcements.documents import link_for, list_documents
from mailer.announcements.lifecycle import to_london
from mailer.extensions import db
from mailer.mail.compose import render_markdown
from mailer.mail.document_links import human_size
from mailer.mail.personal_fields import fill_public
from mailer.models import Announcement, AnnouncementState
from mailer.web.archive import bp


def _public() -> Select[Announcement]:
    return select(Announcement).where(Announcement.is_public.is_(True), Announcement.state == AnnouncementState.SENT)


@bp.get("/archive")
def archive() -> ResponseReturnValue:
    items = db.session.scalars(_public().order_by(Announcement.finished_at.desc(), Announcement.id.desc())).all()
    return render_template("archive/list.html", items=items, to_london=to_london, public_text=fill_public)


@bp.get("/archive/<int:announcement_id>")
def archived(announcement_id: int) -> ResponseReturnValue:
    item = db.session.scalar(_public().where(Announcement.id == announcement_id))
    if item is None:
        abort(404)
    return render_template(
        "archive/item.html",
        item=item,
        subject=fill_public(item.subject),
        body=Markup(render_markdown(fill_public(item.body_markdown))),
        documents=[link_for(d) for d in list_documents(db.session(), item.id)],
        human_size=human_size,
        to_london=to_london,
    )
