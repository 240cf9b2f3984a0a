"""Issue 17 (1, J4): every way a membership ends is noted by the database itself (migration 0014's triggers), and a
departure watch started before a batch is read sees exactly the departures committed after it began."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update

from mailer.clock import FrozenClock
from mailer.engine.departures import departures_for, left_among
from mailer.extensions import db
from mailer.models import Member, MemberDeparture, MemberStatus
from mailer.worker.housekeeping import Retention, purge
from support.factories import add_member, add_members


def departed(app: Any) -> list[int]:
    with app.app_context():
        try:
            return list(db.session.scalars(select(MemberDeparture.member_id).order_by(MemberDeparture.id)))
        finally:
            db.session.remove()


def set_status(app: Any, member_id: int, status: MemberStatus) -> None:
    with app.app_context():
        db.session.execute(update(Member).where(Member.id == member_id).values(status=status))
        db.session.commit()
        db.session.remove()


def test_the_database_notes_each_membership_that_ends_and_nothing_else(app: Any, clock: FrozenClock) -> None:
    """Unsubscribing and erasing a member are noted once each; a pending signup purged, a name change, a re-join
    (unsubscribed -> member) and an unsubscribed row deleted are not."""
    stays, leaves, erased, gone_again = add_members(app, clock, 4)
    with app.app_context():
        pending = add_member("pending@example.org", clock=clock, status=MemberStatus.PENDING)
        db.session.commit()
    set_status(app, leaves, MemberStatus.UNSUBSCRIBED)
    set_status(app, gone_again, MemberStatus.UNSUBSCRIBED)
    with app.app_context():
        db.session.execute(update(Member).where(Member.id == stays).values(name="New name"))
        db.session.execute(delete(Member).where(Member.id.in_([erased, pending])))
        db.session.commit()
        db.session.remove()
    set_status(app, leaves, MemberStatus.MEMBER)  # re-joined: not a departure
    with app.app_context():
        db.session.execute(delete(Member).where(Member.id == gone_again))  # had already left: noted once, then
        db.session.commit()
        db.session.remove()
    assert departed(app) == [leaves, gone_again, erased]


def test_a_watch_sees_what_left_after_it_began_and_a_rolled_back_leave_never(app: Any, clock: FrozenClock) -> None:
    """Departures committed before the watch began are the batch's own read's business; those after it are seen
    at the next look (on PostgreSQL from the NOTIFY already on the socket); a transaction that rolled back is not a
    departure; the purge drops notes older than a day."""
    before, after, rolled_back, other = add_members(app, clock, 4)
    with app.app_context():
        departures = departures_for(db.engine.url)
    assert departures is not None
    try:
        set_status(app, before, MemberStatus.UNSUBSCRIBED)
        watch = departures.watch()
        assert left_among(watch, [before, after, other]) == set()
        set_status(app, after, MemberStatus.UNSUBSCRIBED)
        with app.app_context():
            db.session.execute(update(Member).where(Member.id == rolled_back).values(status=MemberStatus.UNSUBSCRIBED))
            db.session.rollback()
            db.session.remove()
        seen = left_among(watch, [before, after, rolled_back, other, None])
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:  # a NOTIFY may still be on its way on a busy machine
            time.sleep(0.01)
            seen = left_among(watch, [before, after, rolled_back, other, None])
        assert seen == {after}
        assert departures.watch().left() == set(), "a new watch starts from now"
    finally:
        departures.close()
    with app.app_context():
        first, second = db.session.scalars(select(MemberDeparture.id).order_by(MemberDeparture.id)).all()
        db.session.execute(update(MemberDeparture).where(MemberDeparture.id == first)
                           .values(left_at=clock.now() - timedelta(days=1, minutes=1)))
        db.session.execute(update(MemberDeparture).where(MemberDeparture.id == second)
                           .values(left_at=clock.now() - timedelta(hours=23)))
        assert purge(db.session, clock=clock, retention=Retention()).departures == 1
        db.session.commit()
        db.session.remove()
    assert departed(app) == [after]
