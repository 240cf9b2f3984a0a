"""Issue 17 (J4): unsubscribe links never expire and keep working after a re-join; an erased member's
answers 200 "not on our list" and changes nothing. Preferences links stay revoked by a re-join.

Everything goes through the real pages, the worker's tick and a real SMTP sink, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from mailer.extensions import db
from mailer.models import ConsentAction, ConsentEvent, ConsentMethod, Member, MemberStatus
from mailer.worker.runner import run_tick_for_app
from support.factories import due_announcement
from support.mail import link_to
from support.web import join_and_confirm, path_of, post_button

PARENT = "parent@example.org"


def member_state(app: Any) -> tuple[MemberStatus, int]:
    with app.app_context():
        member = db.session.scalar(select(Member).where(Member.email_key == PARENT))
        assert member is not None
        return member.status, member.token_version


def withdrawals(app: Any) -> list[ConsentMethod]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(ConsentEvent.method)
                .where(ConsentEvent.action == ConsentAction.WITHDRAWN)
                .order_by(ConsentEvent.id)
            )
        )


def announcement_links(app: Any, clock: Any, smtp: Any) -> tuple[str, str]:
    """Send an announcement; (the List-Unsubscribe header's path, the preferences link's path) in the parent's copy."""
    before = len(smtp.received)
    due_announcement(app, clock, subject="Council letter")
    run_tick_for_app(app)
    message = smtp.wait_for(before + 1)[before].message
    header = re.fullmatch(r"<(https://[^>]+/unsubscribe/[^>]+)>", str(message["List-Unsubscribe"]))
    assert header is not None, message["List-Unsubscribe"]
    return path_of(header.group(1)), path_of(link_to(message, "/preferences/"))


def test_an_old_unsubscribe_link_still_works_after_leaving_rejoining_and_a_long_time(app, client, smtp, clock):
    """A member leaves, comes back a year later and confirms (a new token version): the one-click link
    in the announcement sent before they left, and the link in their first welcome email, still unsubscribe
    them; the old preferences link, which shows their details, is revoked."""
    welcome = join_and_confirm(app, client, smtp, PARENT)
    welcome_unsubscribe = path_of(link_to(welcome, "/unsubscribe/"))
    one_click, old_preferences = announcement_links(app, clock, smtp)
    assert client.post(one_click, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert member_state(app) == (MemberStatus.UNSUBSCRIBED, 1)

    clock.advance(days=400)
    join_and_confirm(app, app.test_client(), smtp, PARENT)
    assert member_state(app) == (MemberStatus.MEMBER, 2)
    page = app.test_client().get(one_click)
    assert page.status_code == 200 and "Press the button" in page.get_data(as_text=True)
    response = app.test_client().post(one_click, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "You are unsubscribed" in response.get_data(as_text=True)
    assert member_state(app) == (MemberStatus.UNSUBSCRIBED, 2)

    clock.advance(days=30)
    join_and_confirm(app, app.test_client(), smtp, PARENT)
    assert member_state(app)[0] is MemberStatus.MEMBER
    assert post_button(app.test_client(), welcome_unsubscribe).status_code == 200  # the browser form, years on
    assert member_state(app)[0] is MemberStatus.UNSUBSCRIBED
    assert withdrawals(app) == [ConsentMethod.ONE_CLICK, ConsentMethod.ONE_CLICK, ConsentMethod.EMAIL_LINK]

    assert app.test_client().get(old_preferences).status_code == 400  # preferences links stay revocable


def test_an_erased_members_unsubscribe_link_says_not_on_our_list_and_changes_nothing(app, client, smtp, clock):
    """After erasure the unsubscribe page and the one-click POST answer 200 "You are not on our list", never
    400 (a mail client must not retry or report it), and no row is written."""
    welcome = join_and_confirm(app, client, smtp, PARENT)
    unsubscribe = path_of(link_to(welcome, "/unsubscribe/"))
    assert post_button(client, path_of(link_to(welcome, "/preferences/")) + "/erase").status_code == 200

    def counts() -> tuple[int, int]:
        with app.app_context():
            return (db.session.scalar(select(func.count()).select_from(Member)),
                    db.session.scalar(select(func.count()).select_from(ConsentEvent)))

    before = counts()
    outsider = app.test_client()
    for response in (outsider.get(unsubscribe), outsider.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})):
        body = response.get_data(as_text=True)
        assert response.status_code == 200 and "You are not on our list" in body
        assert PARENT not in body
    assert counts() == before and before[0] == 0
