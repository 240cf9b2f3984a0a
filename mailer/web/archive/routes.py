"""Archive pages show the announcement body only: never a member's name or personal links.

Public announcements (sent, then put in the archive by an admin: J7) are listed, have a page each and are in
the Atom feed. The signed web view ("View in your browser", issue 17.4) shows any announcement the same way
without it being public, and sends a visitor to the archive page once it is."""

from __future__ import annotations

from flask import abort, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from sqlalchemy import Select, select

from mailer.announcements.documents import link_for, list_documents
from mailer.announcements.lifecycle import to_london
from mailer.errors import TokenInvalid
from mailer.extensions import db
from mailer.mail.compose import render_markdown
from mailer.mail.document_links import human_size
from mailer.mail.personal_fields import fill_public
from mailer.mail.tokens import read_web_view_token
from mailer.models import Announcement, AnnouncementState
from mailer.web.archive import bp
from mailer.web.archive.feed import archive_feed
from mailer.web.context import current_settings

FEED_SIZE = 50


def _public() -> Select[Announcement]:
    return select(Announcement).where(Announcement.is_public.is_(True), Announcement.state == AnnouncementState.SENT)


def _newest_public() -> list[Announcement]:
    return list(db.session.scalars(_public().order_by(Announcement.finished_at.desc(), Announcement.id.desc())))


@bp.get("/archive")
def archive() -> ResponseReturnValue:
    return render_template("archive/list.html", items=_newest_public(), to_london=to_london, public_text=fill_public)


@bp.get("/archive/feed.atom")
def feed() -> ResponseReturnValue:
    settings = current_settings()
    body = archive_feed(_newest_public()[:FEED_SIZE], base_url=settings.base_url, forum_name=settings.forum_name)
    return body, 200, {"Content-Type": "application/atom+xml; charset=utf-8"}


@bp.get("/archive/<int:announcement_id>")
def archived(announcement_id: int) -> ResponseReturnValue:
    item = db.session.scalar(_public().where(Announcement.id == announcement_id))
    if item is None:
        abort(404)
    return _page(item, web_view=False)


@bp.get("/archive/view/<token>")
def web_view(token: str) -> ResponseReturnValue:
    """ "View in your browser" (issue 17.4): any signed announcement, without member data; a public one's
    link goes to its archive page. Tampered: 404; cancelled: 410 with a page saying so."""
    try:
        announcement_id = read_web_view_token(current_settings().secret_key, token)
    except TokenInvalid:
        abort(404)
    item = db.session.get(Announcement, announcement_id)
    if item is None:
        abort(404)
    if item.state is AnnouncementState.CANCELLED:
        return render_template("archive/withdrawn.html"), 410, {"X-Robots-Tag": "noindex"}
    if item.is_public and item.state is AnnouncementState.SENT:
        return redirect(url_for("archive.archived", announcement_id=item.id))
    return _page(item, web_view=True), 200, {"X-Robots-Tag": "noindex"}


def _page(item: Announcement, *, web_view: bool) -> str:
    return render_template(
        "archive/item.html",
        item=item,
        web_view=web_view,
        subject=fill_public(item.subject),
        body=Markup(render_markdown(fill_public(item.body_markdown))),
        documents=[link_for(d) for d in list_documents(db.session(), item.id)],
        human_size=human_size,
        to_london=to_london,
    )
