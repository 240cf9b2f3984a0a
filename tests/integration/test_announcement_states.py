"""One lifecycle (J3, issue 16.4): every state change from the rule table, on SQLite and PostgreSQL,
and an admin's "Cancel" racing the worker's start over two real database connections."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from mailer.announcements.lifecycle import cancel_announcement
from mailer.announcements.states import RULES, Action, attempt, transition
from mailer.clock import FrozenClock
from mailer.engine.announcement_sender import DeliverySummary, start_due_announcements
from mailer.errors import TransitionRefused
from mailer.extensions import db
from mailer.models import Announcement, AnnouncementState, Delivery, DeliveryState
from mailer.transaction import transaction
from mailer.worker.runner import run_tick_for_app
from support.factories import add_members, due_announcement, logged_in_admin
from support.web import csrf_token

S = AnnouncementState
HOLD_AFTER = timedelta(hours=6)

# The product's rules, written out here rather than read from the table: action -> {from: to}.
ALLOWED: dict[Action, dict[AnnouncementState, AnnouncementState]] = {
    Action.EDIT: {S.DRAFT: S.DRAFT, S.SCHEDULED: S.SCHEDULED, S.HELD: S.HELD},
    Action.SCHEDULE: {S.DRAFT: S.SCHEDULED, S.SCHEDULED: S.SCHEDULED, S.HELD: S.SCHEDULED},
    Action.SEND_NOW: {S.DRAFT: S.SCHEDULED, S.SCHEDULED: S.SCHEDULED, S.HELD: S.SCHEDULED},
    Action.UNSCHEDULE: {S.SCHEDULED: S.DRAFT, S.HELD: S.DRAFT},
    Action.CANCEL: {S.DRAFT: S.CANCELLED, S.SCHEDULED: S.CANCELLED, S.HELD: S.CANCELLED},
    Action.PAUSE: {S.SENDING: S.PAUSED},
    Action.RESUME: {S.PAUSED: S.SENDING},
    Action.STOP: {S.SENDING: S.CANCELLED, S.PAUSED: S.CANCELLED},
    Action.START: {S.SCHEDULED: S.SENDING},
    Action.HOLD: {S.SCHEDULED: S.HELD},
    Action.FINISH: {S.SENDING: S.SENT},
}
# What else each allowed change writes: "now", "send_at" or None; every other column stays as it was.
WRITES: dict[Action, dict[str, str | None]] = {
    Action.EDIT: {"updated_at": "now"},
    Action.SCHEDULE: {"scheduled_at": "send_at", "updated_at": "now"},
    Action.SEND_NOW: {"scheduled_at": "send_at", "updated_at": "now"},  # the end of the undo window (issue 18)
    Action.UNSCHEDULE: {"scheduled_at": None, "updated_at": "now"},
    Action.CANCEL: {"updated_at": "now"},
    Action.PAUSE: {"updated_at": "now"},
    Action.RESUME: {"updated_at": "now"},
    Action.STOP: {"finished_at": "now", "updated_at": "now"},
    Action.START: {"started_at": "now", "updated_at": "now"},
    Action.HOLD: {"started_at": None, "updated_at": "now"},
    Action.FINISH: {"finished_at": "now", "updated_at": "now"},
}


def row(announcement_id: int) -> dict[str, Any]:
    return dict(
        db.session.execute(select(Announcement.__table__).where(Announcement.id == announcement_id)).mappings().one()
    )


def put_in_state(announcement_id: int, state: AnnouncementState, clock: FrozenClock) -> None:
    """Set the row directly (the test's own setup), with times that every change visibly replaces."""
    earlier = clock.now() - timedelta(minutes=1)
    with transaction(db.session):
        db.session.execute(
            update(Announcement)
            .where(Announcement.id == announcement_id)
            .values(state=state, scheduled_at=earlier, started_at=earlier, finished_at=None, updated_at=earlier)
            .execution_options(synchronize_session=False)
        )
    db.session.expire_all()


def test_rule_table_every_action_from_every_state(app, clock):
    """Each action from each of the 7 states: allowed ones set the state and their fields, others raise
    TransitionRefused naming the state and change nothing; a loaded Announcement shows the result."""
    assert set(RULES) == set(ALLOWED) == set(Action)
    send_at = clock.now() + timedelta(days=1)
    options: dict[Action, dict[str, Any]] = {
        Action.SCHEDULE: {"send_at": send_at}, Action.SEND_NOW: {"send_at": send_at},
        Action.START: {"hold_after": HOLD_AFTER},
        Action.HOLD: {"hold_after": timedelta(0)},
    }
    with app.app_context():
        announcement_id = due_announcement(app, clock, subject="Rules")
        for action in Action:
            for state in AnnouncementState:
                put_in_state(announcement_id, state, clock)
                before = row(announcement_id)
                loaded = db.session.get(Announcement, announcement_id)
                assert loaded is not None and loaded.state is state
                case = f"{action} from {state}"
                if state in ALLOWED[action]:
                    with transaction(db.session):
                        result = transition(db.session, announcement_id, action, clock=clock, **options.get(action, {}))
                    expected = dict(before, state=ALLOWED[action][state])
                    for name, value in WRITES[action].items():
                        expected[name] = {"now": clock.now(), "send_at": send_at, None: None}[value]
                    assert result is ALLOWED[action][state], case
                    assert row(announcement_id) == expected, case
                    assert loaded.state is ALLOWED[action][state], case
                else:
                    with pytest.raises(TransitionRefused) as refused, transaction(db.session):
                        transition(db.session, announcement_id, action, clock=clock, **options.get(action, {}))
                    assert (refused.value.announcement_id, refused.value.action, refused.value.state) == (
                        announcement_id, action, state
                    ), case
                    assert f"is {state.value}" in str(refused.value) or f"already {state.value}" in str(refused.value)
                    assert row(announcement_id) == before, case
                    assert loaded.state is state, case


def test_refusals_read_as_sentences_an_admin_understands(app, clock):
    """The refusal says what the announcement is now and what to do instead; a deleted one says so."""
    with app.app_context():
        announcement_id = due_announcement(app, clock, subject="Messages")
        cases = [
            (S.SENDING, Action.CANCEL,
             "This announcement is sending. It can only be cancelled before sending starts; pause it instead."),
            (S.PAUSED, Action.PAUSE, "This announcement is already paused."),
            (S.DRAFT, Action.RESUME, "This announcement is draft. Only a paused announcement can be resumed."),
            (S.SENT, Action.EDIT, "This announcement is sent. It can only be changed before sending starts."),
        ]
        for state, action, message in cases:
            put_in_state(announcement_id, state, clock)
            with pytest.raises(TransitionRefused, match=f"^{re.escape(message)}$"), transaction(db.session):
                transition(db.session, announcement_id, action, clock=clock)
        with pytest.raises(TransitionRefused, match="no longer exists") as gone, transaction(db.session):
            transition(db.session, announcement_id + 1000, Action.CANCEL, clock=clock)
        assert gone.value.state is None


def test_start_and_hold_check_the_time_in_the_same_statement(app, clock):
    """A scheduled announcement starts only once due and not overdue, is held only when overdue;
    finish waits for the last open delivery. Each guard is part of the UPDATE, not a read before it."""
    add_members(app, clock, 1)
    with app.app_context():
        announcement_id = due_announcement(app, clock, subject="Guards")
        with transaction(db.session):
            db.session.execute(update(Announcement).values(scheduled_at=clock.now() + timedelta(hours=1)))
        assert not attempt(db.session, announcement_id, Action.START, clock=clock, hold_after=HOLD_AFTER)
        assert not attempt(db.session, announcement_id, Action.HOLD, clock=clock, hold_after=HOLD_AFTER)
        clock.advance(hours=8)  # seven hours late
        assert not attempt(db.session, announcement_id, Action.START, clock=clock, hold_after=HOLD_AFTER)
        assert attempt(db.session, announcement_id, Action.HOLD, clock=clock, hold_after=HOLD_AFTER)
        db.session.commit()
        assert row(announcement_id)["state"] is S.HELD

        put_in_state(announcement_id, S.SENDING, clock)
        with transaction(db.session):
            db.session.add(Delivery(announcement_id=announcement_id, member_id=None, state=DeliveryState.PENDING,
                                    attempts=0, next_attempt_at=clock.now()))
        assert not attempt(db.session, announcement_id, Action.FINISH, clock=clock)
        with transaction(db.session):
            db.session.execute(update(Delivery).values(state=DeliveryState.SENT))
        assert attempt(db.session, announcement_id, Action.FINISH, clock=clock)
        db.session.commit()
        assert row(announcement_id)["state"] is S.SENT


def test_a_refused_button_is_a_409_page_that_links_back_and_changes_nothing(app, clock):
    """Cancel pressed on an announcement that is already sending: a 409 page saying so, with a way back."""
    admin = logged_in_admin(app, clock)
    announcement_id = due_announcement(app, clock, subject="Already going")
    with app.app_context():
        put_in_state(announcement_id, S.SENDING, clock)
        before = row(announcement_id)
    page = f"/admin/announcements/{announcement_id}"
    token = csrf_token(admin.get(page).get_data(as_text=True))
    response = admin.post(f"{page}/cancel", data={"csrf_token": token})
    text = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "This announcement is sending. It can only be cancelled before sending starts; pause it instead." in text
    assert f'href="{page}"' in text and "Nothing was changed." in text
    with app.app_context():
        assert row(announcement_id) == before


# --- two connections racing -------------------------------------------------------


@contextmanager
def held_after_its_state_change(thread_name: str) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Stops the named thread right after its first UPDATE of an announcement, inside its open
    transaction, until `go` is set: the real code runs, the test only chooses the moment."""
    changed, go = threading.Event(), threading.Event()

    def hold(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.current_thread().name == thread_name and statement.lstrip().upper().startswith(
            "UPDATE ANNOUNCEMENT SET"
        ):
            changed.set()
            go.wait(30)

    engine = db.engine
    event.listen(engine, "after_cursor_execute", hold)
    try:
        yield changed, go
    finally:
        go.set()
        event.remove(engine, "after_cursor_execute", hold)


def in_thread(app: Any, name: str, work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `work` in its own thread, app context and so database session; keep what it returned or raised."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        with app.app_context():
            try:
                outcome["result"] = work()
            except Exception as exc:  # any error is kept for the test to look at
                outcome["error"] = exc
            finally:
                db.session.remove()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread, outcome


def admin_cancels(announcement_id: int, clock: FrozenClock) -> Callable[[], None]:
    def work() -> None:
        with transaction(db.session):
            item = db.session.get(Announcement, announcement_id)
            assert item is not None
            cancel_announcement(db.session, item, clock=clock)

    return work


def worker_starts(clock: FrozenClock, summary: DeliverySummary) -> Callable[[], None]:
    return lambda: start_due_announcements(db.session, clock=clock, hold_after=HOLD_AFTER, summary=summary)


def counts(announcement_id: int) -> tuple[AnnouncementState, int]:
    db.session.expire_all()
    state = db.session.scalar(select(Announcement.state).where(Announcement.id == announcement_id))
    deliveries = db.session.scalar(select(func.count()).where(Delivery.announcement_id == announcement_id)) or 0
    db.session.commit()
    return state, deliveries


def test_cancel_while_the_worker_starts_waits_and_is_refused(app, clock, smtp):
    """The worker has changed the state but not committed; the admin's cancel (another connection)
    waits for it, then is refused as "sending"; the send goes ahead for everyone."""
    add_members(app, clock, 3)
    announcement_id = due_announcement(app, clock, subject="Worker first")
    summary = DeliverySummary()
    with app.app_context(), held_after_its_state_change("worker") as (changed, go):
        worker, _ = in_thread(app, "worker", worker_starts(clock, summary))
        assert changed.wait(10), "the worker never started the announcement"
        admin, refused = in_thread(app, "admin", admin_cancels(announcement_id, clock))
        admin.join(0.5)
        assert admin.is_alive(), "the cancel did not wait for the worker's transaction"
        go.set()
        worker.join(30)
        admin.join(30)
        assert not worker.is_alive() and not admin.is_alive()
        error = refused.get("error")
        assert isinstance(error, TransitionRefused), refused
        assert (error.action, error.state) == (Action.CANCEL, S.SENDING)
        assert "pause it instead" in str(error)
        assert summary.started == [announcement_id]
        assert counts(announcement_id) == (S.SENDING, 3)
    run_tick_for_app(app)
    assert len(smtp.wait_for(3)) == 3
    with app.app_context():
        assert counts(announcement_id) == (S.SENT, 3)


def test_worker_start_while_the_admin_cancels_waits_and_sends_nothing(app, clock, smtp):
    """The admin's cancel has changed the state but not committed; the worker's start (another
    connection) waits, then finds nothing to start: no delivery rows, no mail."""
    add_members(app, clock, 3)
    announcement_id = due_announcement(app, clock, subject="Admin first")
    summary = DeliverySummary()
    with app.app_context():
        item = db.session.get(Announcement, announcement_id)
        assert item is not None
        cancel_announcement(db.session, item, clock=clock)  # not committed yet
        worker, outcome = in_thread(app, "worker", worker_starts(clock, summary))
        worker.join(0.5)
        assert worker.is_alive(), "the start did not wait for the admin's transaction"
        db.session.commit()
        worker.join(30)
        assert not worker.is_alive() and "error" not in outcome, outcome
        assert summary.started == [] and summary.held == []
        assert counts(announcement_id) == (S.CANCELLED, 0)
    run_tick_for_app(app)
    assert smtp.received == []


# Seconds between the tick setting off and the admin's press: at once, a tick's first steps may still be
# running, later it is starting or sending. Which wins a round is the database's business, not the test's.
CANCEL_AFTER = (0.0, 0.03, 0.06, 0.1, 0.15, 0.3)


def race(app: Any, admin: Any, page: str, *, cancel_after: float) -> tuple[Any, Any]:
    """An admin's Cancel (over HTTP) and a worker tick, let go together; returns (response, tick summary)."""
    token = csrf_token(admin.get(page).get_data(as_text=True))
    ready = threading.Barrier(2)
    results: dict[str, Any] = {}

    def press_cancel() -> None:
        ready.wait()
        time.sleep(cancel_after)
        results["response"] = admin.post(f"{page}/cancel", data={"csrf_token": token})

    def tick() -> None:
        ready.wait()
        results["tick"] = run_tick_for_app(app)

    threads = [threading.Thread(target=press_cancel), threading.Thread(target=tick)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results["response"], results["tick"]


def test_cancel_and_tick_started_together_end_in_one_defined_state(app, clock, smtp):
    """The admin presses Cancel (over HTTP) as a worker tick starts: in every round exactly one wins.
    Cancel won: cancelled, no deliveries, no mail. Start won: the page is a clear 409, everyone gets it."""
    add_members(app, clock, 3)
    admin = logged_in_admin(app, clock)
    for round_, cancel_after in enumerate(CANCEL_AFTER):
        subject = f"Race {round_}"
        announcement_id = due_announcement(app, clock, subject=subject)
        response, summary = race(app, admin, f"/admin/announcements/{announcement_id}", cancel_after=cancel_after)
        started = announcement_id in summary.deliveries.started
        cancelled = response.status_code == 303
        assert cancelled != started, (response.status_code, summary)
        run_tick_for_app(app)  # whatever is left to send goes now
        with app.app_context():
            state, deliveries = counts(announcement_id)
        mails = [r for r in smtp.received if r.message["Subject"] == subject]
        if cancelled:
            assert (state, deliveries, mails) == (S.CANCELLED, 0, [])
        else:
            assert response.status_code == 409
            page_text = response.get_data(as_text=True)
            assert "pause it instead" in page_text and ("is sending" in page_text or "is sent" in page_text)
            assert (state, deliveries) == (S.SENT, 3)
            assert len(mails) == len({r.rcpt_tos[0] for r in mails}) == 3
