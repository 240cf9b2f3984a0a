"""Issue 20.7: one reminder to confirm, MAILER_CONFIRM_REMINDER_DAYS after joining (off by default), from the
worker's daily housekeeping, through the real SMTP sink on both databases with a frozen clock: exactly one,
never to suppressed or erased addresses, never twice, and the 30-day purge of unconfirmed signups still runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from mailer.extensions import db
from mailer.members.consent import suppress_address
from mailer.models import MailKind, Member, MemberStatus, OutboxMessage
from mailer.settings import settings_of
from mailer.worker.process import housekeeping_job
from mailer.worker.runner import run_tick_for_app
from support.factories import add_member
from support.mail import flat, link_to, parts
from support.web import join, path_of, post_button


def housekeeping(app: Any) -> None:
    """The worker's daily job, as the scheduler runs it."""
    housekeeping_job(app, settings_of(app))


def reminders_queued(app: Any) -> dict[str, int]:
    """{member address: reminder rows} in the outbox."""
    with app.app_context():
        rows: Any = db.session.execute(
            select(Member.email, func.count(OutboxMessage.id))
            .join(OutboxMessage, OutboxMessage.member_id == Member.id)
            .where(OutboxMessage.kind == MailKind.CONFIRM_REMINDER)
            .group_by(Member.email)
        ).all()
        return dict(rows)


def test_one_reminder_after_n_days_whose_link_confirms(make_app, clock, smtp):
    """Issue 20.7: with MAILER_CONFIRM_REMINDER_DAYS=3 the confirmation email says one reminder follows; nothing
    on day 2; on day 3 one reminder with its own true footer and a fresh confirmation button that works; none
    again on later days."""
    app = make_app(MAILER_CONFIRM_REMINDER_DAYS=3)
    client = app.test_client()
    join(client, email="jamie@example.org", name="Jamie Parent")
    run_tick_for_app(app)
    confirmation = smtp.wait_for(1)[0].message
    assert "We will send one reminder in 3 days if you have not confirmed by then" in flat(parts(confirmation)[0])
    clock.advance(days=2, hours=23)
    housekeeping(app)
    run_tick_for_app(app)
    assert len(smtp.received) == 1 and reminders_queued(app) == {}
    clock.advance(hours=1)
    housekeeping(app)
    run_tick_for_app(app)
    reminder = smtp.wait_for(2)[1].message
    assert reminder["Subject"] == "Reminder: please confirm you want to join Test Parent Carer Forum"
    assert reminder["To"] == "Jamie Parent <jamie@example.org>"
    text, html = parts(reminder)
    assert "has not confirmed it. We send one reminder only." in flat(text)
    assert "Confirm my membership" in html and "List-Unsubscribe" not in reminder
    for _ in range(3):
        clock.advance(days=1)
        housekeeping(app)
        run_tick_for_app(app)
    assert len(smtp.received) == 2 and reminders_queued(app) == {"jamie@example.org": 1}
    assert post_button(client, path_of(link_to(reminder, "/confirm/"))).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(Member.status)) is MemberStatus.MEMBER


def test_never_to_suppressed_erased_or_confirmed_and_the_purge_still_runs(make_app, clock, smtp):
    """Issue 20.7, C3: among pending signups only the plain one is reminded: not a bounced (suppressed) or an
    erased address, not one that confirmed; a reminder queued for someone who confirms before it goes is not
    sent; a signup older than 30 days is purged, not reminded."""
    app = make_app(MAILER_CONFIRM_REMINDER_DAYS=5)
    key = settings_of(app).suppression_key
    with app.app_context():
        add_member("old@example.org", status=MemberStatus.PENDING, clock=clock)
    clock.advance(days=26)
    with app.app_context():
        for address in ("plain@example.org", "bounced@example.org", "erased@example.org", "quick@example.org"):
            add_member(address, status=MemberStatus.PENDING, clock=clock)
        add_member("member@example.org", clock=clock)
        suppress_address(db.session, key, "bounced@example.org", "bounce", clock=clock)
        suppress_address(db.session, key, "erased@example.org", "erased", clock=clock)
        db.session.commit()
    clock.advance(days=5)
    housekeeping(app)
    assert reminders_queued(app) == {"plain@example.org": 1, "quick@example.org": 1}
    with app.app_context():  # old@ joined 31 days ago: purged, never reminded
        assert db.session.scalar(select(Member.id).where(Member.email == "old@example.org")) is None
        quick = db.session.scalar(select(Member).where(Member.email == "quick@example.org"))
        assert quick is not None
        quick.status = MemberStatus.MEMBER  # confirmed (the confirm pages are tested above) before the tick
        db.session.commit()
    run_tick_for_app(app)
    [sent] = smtp.wait_for(1)
    assert sent.message["To"] == "Plain <plain@example.org>"
    clock.advance(days=2)
    housekeeping(app)
    run_tick_for_app(app)
    assert len(smtp.received) == 1 and reminders_queued(app) == {"plain@example.org": 1, "quick@example.org": 1}
    clock.advance(days=30)
    housekeeping(app)
    with app.app_context():
        assert db.session.scalar(select(Member.id).where(Member.email == "plain@example.org")) is None


def test_no_reminder_when_the_setting_is_off(app, clock, smtp):
    """Issue 20.7: by default (MAILER_CONFIRM_REMINDER_DAYS=0) nobody is reminded, and the confirmation email
    says we will not email again."""
    join(app.test_client(), email="robin@example.org")
    run_tick_for_app(app)
    assert "We will not email you again" in flat(parts(smtp.wait_for(1)[0].message)[0])
    for _ in range(10):
        clock.advance(days=1)
        housekeeping(app)
    run_tick_for_app(app)
    assert len(smtp.received) == 1 and reminders_queued(app) == {}
