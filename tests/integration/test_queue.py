"""One queue loop for every kind of mail (engine/queue.py), on SQLite and PostgreSQL with a real SMTP sink:
the loop follows what a kind decides (dispose, recheck), hands back expired outbox claims like deliveries,
and streams outbox mail pipelined like announcements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from mailer.engine.outbox_sender import OutboxQueue
from mailer.engine.queue import SetAside, release_expired_claims, send_batch
from mailer.engine.settings import EngineSettings
from mailer.engine.transport import SmtpTransport
from mailer.extensions import db
from mailer.mail.announcement import AnnouncementMail
from mailer.mail.outbox import enqueue_mail
from mailer.mail.transactional import TransactionalMail
from mailer.models import MailKind, OutboxMessage, OutboxState
from mailer.settings import settings_of
from mailer.worker.runner import run_tick_for_app, smtp_opener_for
from support.factories import add_member
from support.smtp_sink import SmtpSink


def settings(worker: str = "queue-test", **overrides: Any) -> EngineSettings:
    return EngineSettings(worker_id=worker, envelope_from="noreply@forum.test", **overrides)


def welcome_mail_for(app: Any, clock: Any, *addresses: str) -> list[int]:
    """One member and one WELCOME outbox row per address; the rows' ids in queue order."""
    with app.app_context():
        for address in addresses:
            member_id = add_member(address, clock=clock)
            enqueue_mail(db.session, MailKind.WELCOME, clock=clock, member_id=member_id)
        db.session.commit()
        newest = select(OutboxMessage.id).order_by(OutboxMessage.id.desc()).limit(len(addresses))
        return sorted(db.session.scalars(newest))


def builders(app: Any, clock: Any) -> tuple[TransactionalMail, AnnouncementMail]:
    return (TransactionalMail.from_settings(app.jinja_env, settings_of(app), clock=clock),
            AnnouncementMail.from_settings(app.jinja_env, settings_of(app), clock=clock))


def outbox(app: Any) -> dict[int, tuple[OutboxState, int, str | None]]:
    with app.app_context():
        return {row.id: (row.state, row.attempts, row.last_error)
                for row in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))}


def test_the_kind_decides_what_a_failed_attempt_means(app, clock, smtp):
    """The loop counts the attempt, then asks the kind's dispose (as Mailman's runners do): a kind that
    never tries again fails a 451 at once, where the outbox's own rule would retry it."""
    decided: list[tuple[int, int, bool]] = []

    class NeverAgain(OutboxQueue):
        def dispose(self, session, item, failure, *, attempts, settings, clock):  # type: ignore[no-untyped-def]
            decided.append((item.id, attempts, failure.permanent))
            return False

    smtp.reply_to_rcpt("later@example.org", "451 4.3.0 try later")
    (row_id,) = welcome_mail_for(app, clock, "later@example.org")
    with app.app_context(), SmtpTransport(smtp_opener_for(app, settings_of(app))) as transport:
        claimed, summary = send_batch(db.session, transport, NeverAgain(*builders(app, clock)), settings=settings(),
                                      clock=clock)
    assert claimed == 1 and (summary.sent, summary.retrying, summary.failed) == (0, 0, 1)
    assert decided == [(row_id, 1, False)]
    state, attempts, error = outbox(app)[row_id]
    assert (state, attempts) == (OutboxState.FAILED, 1) and "451" in (error or "")


def test_every_recheck_covers_the_rest_of_the_batch_and_its_answer_is_kept(app, clock, smtp):
    """S5 for any kind: each look is given the rest of the batch, and a row it sets aside is left in the
    state the kind names, with its reason and no attempt counted, while the others are sent."""
    looks: list[list[int]] = []

    class SecondThoughts(OutboxQueue):
        def recheck(self, session: Any, rest: Sequence[Any]) -> Mapping[int, SetAside]:
            looks.append([item.id for item in rest])
            return {rest[-1].id: SetAside(OutboxState.DROPPED, "not wanted after all")}

    ids = welcome_mail_for(app, clock, *(f"parent{n}@example.org" for n in range(4)))
    with app.app_context(), SmtpTransport(smtp_opener_for(app, settings_of(app))) as transport:
        claimed, summary = send_batch(db.session, transport, SecondThoughts(*builders(app, clock)),
                                      settings=settings(recheck_seconds=0), clock=clock)
    assert claimed == 4
    assert looks == [ids[0:], ids[1:], ids[2:], ids[3:]]
    assert summary.sent == 3 and summary.set_aside == {OutboxState.DROPPED: 1}
    assert [r.rcpt_tos for r in smtp.received] == [[f"parent{n}@example.org"] for n in range(3)]
    assert outbox(app)[ids[3]] == (OutboxState.DROPPED, 0, "not wanted after all")


def test_expired_outbox_claims_go_back_in_the_queue_and_live_ones_stay(app, clock):
    """S3 for the outbox as for deliveries: a claim older than the lease is handed back and claimed again;
    a younger one stays with its worker."""
    lease = timedelta(seconds=60)
    ids = welcome_mail_for(app, clock, "first@example.org", "second@example.org")
    with app.app_context():
        kind = OutboxQueue(*builders(app, clock))
        dead = kind.claim(db.session, settings=settings("dead", lease=lease, batch_size=1), clock=clock)
        clock.advance(seconds=59)
        alive = kind.claim(db.session, settings=settings("alive", lease=lease, batch_size=1), clock=clock)
        assert (dead, alive) == ([ids[0]], [ids[1]])
        release_expired_claims(db.session, OutboxQueue, settings=settings("new", lease=lease), clock=clock)
        assert kind.claim(db.session, settings=settings("new", lease=lease), clock=clock) == []
        clock.advance(seconds=2)
        release_expired_claims(db.session, OutboxQueue, settings=settings("new", lease=lease), clock=clock)
        assert kind.claim(db.session, settings=settings("new", lease=lease), clock=clock) == dead
        owners = dict(db.session.execute(select(OutboxMessage.id, OutboxMessage.claimed_by)).all())
        assert owners[ids[0]].startswith("new:") and owners[ids[1]].startswith("alive:")


def test_outbox_mail_is_pipelined_over_one_connection_like_announcements(make_app, clock):
    """Several confirmations in one tick go as one stream: each message's end of data travels with the
    next one's envelope when the relay offers PIPELINING (one round trip a message)."""
    with SmtpSink(pipelining=True) as sink:
        app = make_app(MAIL_PORT=sink.port)
        welcome_mail_for(app, clock, *(f"parent{n}@example.org" for n in range(4)))
        summary = run_tick_for_app(app)
        assert summary.outbox.sent == 4
        assert [r.rcpt_tos for r in sink.wait_for(4)] == [[f"parent{n}@example.org"] for n in range(4)]
        assert {r.connection for r in sink.received} == {1}
        assert [c for c, what in sink.pipelined if what == "END"] == [1] * 3
