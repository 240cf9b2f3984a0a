"""The archive's Atom feed (R3, issue 20.6), built with feedgen: public announcements that have been sent,
newest first, with absolute links and the archive's generic words in place of personal fields."""

from __future__ import annotations

from collections.abc import Sequence

from feedgen.feed import FeedGenerator  # type: ignore[import-untyped]

from mailer.mail.compose import render_markdown
from mailer.mail.personal_fields import fill_public
from mailer.models import Announcement


def archive_feed(items: Sequence[Announcement], *, base_url: str, forum_name: str) -> bytes:
    """The Atom document for these announcements, in the order given (newest first)."""
    archive_url = f"{base_url}/archive"
    feed = FeedGenerator()
    feed.id(archive_url)
    feed.title(f"{forum_name}: past announcements")
    feed.subtitle(f"Announcements {forum_name} has sent to members by email")
    feed.language("en-GB")
    feed.author({"name": forum_name})
    feed.link(href=archive_url, rel="alternate", type="text/html")
    feed.link(href=f"{archive_url}/feed.atom", rel="self", type="application/atom+xml")
    newest = None
    for item in items:
        url = f"{archive_url}/{item.id}"
        when = item.finished_at or item.updated_at
        newest = max(newest, when) if newest else when
        entry = feed.add_entry(order="append")
        entry.id(url)
        entry.title(fill_public(item.subject))
        entry.link(href=url, rel="alternate", type="text/html")
        entry.updated(when)
        entry.published(when)
        entry.content(render_markdown(fill_public(item.body_markdown)), type="html")
    if newest is not None:
        feed.updated(newest)
    result: bytes = feed.atom_str(pretty=True)
    return result
