"""One queue loop for every kind of mail the engine sends: claim -> build -> send -> record (S3-S6).

A kind of queued mail (the outbox, announcement deliveries) supplies only how to claim and load
its rows, how to build one message, which rows are not to be sent after all, and what a failed
attempt means (`QueueKind.dispose`, as `_dispose` is in GNU Mailman's runner base class: it says
whether the message waits for another try). The loop owns what every kind needs the same:

- claims commit before any SMTP, and a claim older than the lease is handed back (S3);
- every `recheck_seconds` the kind looks again at the rest of the batch (who left, what was
  paused) and its answer holds for the rest of the batch until the next look (S5);
- the messages stream through `SmtpTransport.send_all` (pipelining, one message built ahead
  while the relay reads the current one);
- just before each write to the relay, a message whose member left since the batch was read is
  withdrawn (engine/departures.py: one cheap look at what is new, not a query a message; J4);
- results are written in small transactions after the server answered, every `mark_every`
  messages or `mark_seconds`, whichever comes first (EngineSettings.time_to_mark), so a crash
  sends again at most that many (at-least-once);
- when no connection can be made, what has no outcome yet is handed back untouched, with no
  attempt used up, for the next tick."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar, cast

from sqlalchemy import update
from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.engine.claims import claim_due, release_expired, release_stopped
from mailer.engine.departures import Departures, DepartureWatch, left_among
from mailer.engine.idsets import in_ids
from mailer.engine.settings import EngineSettings
from mailer.engine.transport import Outgoing, SendFailure, ServerUnavailable, SmtpTransport, Withdrawn, unwritable
from mailer.logs.redact import redact
from mailer.mail.verp import VerpKind
from mailer.transaction import transaction

log = logging.getLogger(__name__)


class Queued(Protocol):
    """One claimed row as the loop sees it: plain values, read once the claim is committed."""

    @property
    def id(self) -> int: ...

    @property
    def address(self) -> str: ...


Item = TypeVar("Item", bound=Queued)


class States(NamedTuple):
    """A queue table's states that the loop itself sets."""

    pending: Any
    sending: Any
    sent: Any
    failed: Any

    @classmethod
    def of(cls, state: Any) -> States:
        """The states of a queue table's state enum, which names them PENDING, SENDING, SENT and FAILED."""
        return cls(state.PENDING, state.SENDING, state.SENT, state.FAILED)


@dataclass(frozen=True)
class SetAside:
    """A claimed row that is not sent after all, and the state it is left in (no attempt counted).

    `reason` becomes the row's last error; None leaves the last error as it was."""

    state: Any
    reason: str | None = None


@dataclass
class QueueSummary:
    """What batches of one kind did; rows set aside are counted by the state they were left in."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    set_aside: Counter[Any] = field(default_factory=Counter)
    server_unavailable: bool = False

    def add(self, other: QueueSummary) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.set_aside.update(other.set_aside)
        self.server_unavailable = self.server_unavailable or other.server_unavailable


class QueueKind(ABC, Generic[Item]):
    """One kind of queued mail: everything the loop cannot know about it."""

    model: ClassVar[Any]  # the table: id, state, attempts, next_attempt_at, claimed_at, claimed_by, sent_at, last_error
    states: ClassVar[States]
    verp: ClassVar[VerpKind]  # what a bounce to this kind's envelope sender points at
    noun: ClassVar[str]  # for log lines: "3 outbox message(s) wait"
    departed: ClassVar[SetAside | None] = None  # what a row becomes when its member left mid-send (None: not watched)

    @classmethod
    def claim(cls, session: Session, *, settings: EngineSettings, clock: Clock) -> list[int]:
        """Claim up to a batch of due rows for this worker and commit; their ids in queue order.
        By default the earliest due rows of the whole table."""
        with transaction(session):
            return cls.claim_rows(session, settings=settings, clock=clock, limit=settings.batch_size)

    @classmethod
    def claim_rows(
        cls, session: Session, *, settings: EngineSettings, clock: Clock, limit: int, scope: Any = None
    ) -> list[int]:
        """One claim of up to `limit` due rows of this kind's table (`scope`: see engine/claims.py), in the
        caller's transaction."""
        return claim_due(
            session, cls.model, pending=cls.states.pending, sending=cls.states.sending, worker_id=settings.worker_id,
            now=clock.now(), limit=limit, scope=scope,
        )

    @abstractmethod
    def load(self, session: Session, ids: list[int]) -> list[Item]:
        """What each claimed row needs, in the order given, read in the caller's transaction."""

    @abstractmethod
    def build(self, item: Item, *, now: datetime) -> bytes:
        """The message as it goes on the wire; ValueError when it cannot be written for this address."""

    def set_aside(self, item: Item) -> SetAside | None:
        """Whether this row, as loaded, is not to be sent (and what it becomes): by default it is sent."""
        return None

    def watched_member(self, item: Item) -> int | None:
        """The member whose leaving withdraws this message up to the moment it is written (J4), for kinds with
        `departed` set; None: sent regardless."""
        return None

    def recheck(self, session: Session, rest: Sequence[Item]) -> Mapping[int, SetAside]:
        """A fresh look at the rest of the batch (S5): the rows not to send after all, by id. The answer
        holds until the next look, `recheck_seconds` later. By default nothing changes mid-batch."""
        return {}

    @classmethod
    def lease_scope(cls) -> Any:
        """Which of this kind's expired claims are handed back (None: all of them)."""
        return None

    def dispose(
        self, session: Session, item: Item, failure: SendFailure, *, attempts: int, settings: EngineSettings,
        clock: Clock,
    ) -> bool:
        """What a failed attempt means: True to try again after the backoff, False to fail the row.

        Runs in the transaction that records it, after `attempts` (this one included) is counted. By
        default a permanent refusal fails at once and a passing one is retried until max_attempts."""
        return retry_allowed(failure, attempts=attempts, settings=settings)


def retry_allowed(failure: SendFailure, *, attempts: int, settings: EngineSettings) -> bool:
    """A passing failure is tried again until max_attempts; a permanent one (5xx) never (S4)."""
    return not failure.permanent and attempts < settings.max_attempts


def release_expired_claims(
    session: Session, kind: type[QueueKind[Any]], *, settings: EngineSettings, clock: Clock, also: Sequence[str] = ()
) -> int:
    """Rows of a kind claimed by a worker that stopped go back in the queue (S3); returns how many.

    A worker stopped when its heartbeat is older than settings.stale_after (or it is named in
    `also`); the lease is the last resort, for claims of a worker that never wrote a heartbeat."""
    now = clock.now()
    with transaction(session):
        stopped = release_stopped(
            session, kind.model, pending=kind.states.pending, sending=kind.states.sending, now=now,
            stale_after=settings.stale_after, scope=kind.lease_scope(), also=also,
        )
        expired = release_expired(
            session, kind.model, pending=kind.states.pending, sending=kind.states.sending, now=now,
            lease=settings.lease, scope=kind.lease_scope(),
        )
    if stopped:
        log.warning("%d %s claimed by a worker that stopped (no heartbeat for %ss) are sent again", stopped,
                    kind.noun, round(settings.stale_after.total_seconds(), 1))
    if expired:
        log.warning("%d %s claimed longer ago than the lease are sent again", expired, kind.noun)
    return stopped + expired


class _Results(Generic[Item]):
    """Outcomes known but not yet written, and every row of the batch that has one."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.set_aside: dict[SetAside, list[int]] = {}
        self.failed: list[tuple[Item, SendFailure]] = []
        self.settled: set[int] = set()
        self.unwritten = 0

    def add(self, item: Item, failure: SendFailure | None) -> None:
        if failure is None:
            self.sent.append(item.id)
        else:
            self.failed.append((item, failure))
        self.settled.add(item.id)
        self.unwritten += 1

    def add_set_aside(self, item: Item, aside: SetAside) -> None:
        self.set_aside.setdefault(aside, []).append(item.id)
        self.settled.add(item.id)
        self.unwritten += 1

    def clear(self) -> None:
        self.sent, self.set_aside, self.failed, self.unwritten = [], {}, [], 0


def send_batch(
    session: Session,
    transport: SmtpTransport,
    kind: QueueKind[Item],
    *,
    settings: EngineSettings,
    clock: Clock,
    departures: Departures | None = None,
) -> tuple[int, QueueSummary]:
    """Claim one batch of `kind`, send it, record each result. Returns (rows claimed, summary).

    With `departures`, a kind that watches its members withdraws a message whose member left, up to the
    moment it is written to the relay (J4)."""
    summary = QueueSummary()
    ids = kind.claim(session, settings=settings, clock=clock)
    if not ids:
        return 0, summary
    started = time.monotonic()
    # Before the rows are read: every departure the read does not see, the watch does.
    watch = departures.watch() if departures is not None and kind.departed is not None else None
    with transaction(session):
        items = kind.load(session, ids)
    results: _Results[Item] = _Results()

    def messages() -> Iterator[Outgoing]:
        """The batch's messages, built as the connection is ready for each; rows not to send are settled here."""
        last_check = time.monotonic()
        later: Mapping[int, SetAside] = {}
        for position, item in enumerate(items):
            if time.monotonic() - last_check >= settings.recheck_seconds:
                later = kind.recheck(session, items[position:])
                last_check = time.monotonic()
            aside = later.get(item.id) or kind.set_aside(item)
            if aside is not None:
                results.add_set_aside(item, aside)
                continue
            try:
                raw = kind.build(item, now=clock.now())
            except ValueError as exc:  # an address the email package cannot write: this one fails, the rest go
                results.add(item, unwritable(exc))
                continue
            yield Outgoing(item, settings.envelope_for(kind.verp, item.id), item.address, raw)

    last_marked = time.monotonic()
    withdrawn = _withdrawals(session, kind, watch) if watch is not None else None
    try:
        with closing(transport.send_all(messages(), withdrawn=withdrawn)) as outcomes:
            for key, failure in outcomes:
                if isinstance(failure, Withdrawn):
                    results.add_set_aside(cast(Item, key), failure.why)
                else:
                    results.add(cast(Item, key), failure)
                if settings.time_to_mark(results.unwritten, last_marked):
                    _record(session, kind, results, settings=settings, clock=clock, summary=summary)
                    last_marked = time.monotonic()
    except ServerUnavailable as exc:
        # Nobody's fault but the server's: put the rest back untouched for the next tick.
        waiting = [item.id for item in items if item.id not in results.settled]
        log.warning("mail server unavailable, %d %s wait: %s", len(waiting), kind.noun, redact(str(exc)))
        summary.server_unavailable = True
        _record(session, kind, results, settings=settings, clock=clock, summary=summary)
        _release(session, kind, waiting, str(exc))
        return len(ids), summary
    _record(session, kind, results, settings=settings, clock=clock, summary=summary)
    elapsed = max(time.monotonic() - started, 1e-6)
    log.info(
        "batch: %d %s sent, %d failed, %d retrying, %d not sent in %.2fs (%.0f msg/s)",
        summary.sent, kind.noun, summary.failed, summary.retrying, summary.set_aside.total(), elapsed,
        summary.sent / elapsed,
    )
    return len(ids), summary


def _withdrawals(
    session: Session, kind: QueueKind[Item], watch: DepartureWatch
) -> Callable[[list[Any]], Mapping[Any, SetAside]]:
    """The check `send_all` makes before each write: which of these messages' members left (J4).

    Usually one look at what is new since the batch was read (engine/departures.py); when the watch cannot
    say, the kind's own look at the database (`recheck`), which also hands back rows of a paused send."""
    departed = cast(SetAside, kind.departed)

    def withdrawn(keys: list[Any]) -> Mapping[Any, SetAside]:
        items = cast(list[Item], keys)
        left = left_among(watch, (kind.watched_member(item) for item in items))
        if left is None:
            rechecked = kind.recheck(session, items)
            return {item: rechecked[item.id] for item in items if item.id in rechecked}
        if not left:
            return {}
        return {item: departed for item in items if kind.watched_member(item) in left}

    return withdrawn


def _record(
    session: Session,
    kind: QueueKind[Item],
    results: _Results[Item],
    *,
    settings: EngineSettings,
    clock: Clock,
    summary: QueueSummary,
) -> None:
    """Write the outcomes known so far in one transaction: sent and set-aside rows in one UPDATE per
    state, each failed attempt on its own row as its kind disposes of it."""
    if not results.unwritten:
        return
    model, states, now = kind.model, kind.states, clock.now()
    with transaction(session):
        if results.sent:
            session.execute(
                update(model)
                .where(in_ids(session, model.id, results.sent))
                .values(state=states.sent, sent_at=now, attempts=model.attempts + 1, last_error=None)
                .execution_options(synchronize_session=False)
            )
            summary.sent += len(results.sent)
        for aside, ids in results.set_aside.items():
            values: dict[str, Any] = {"state": aside.state}
            if aside.reason is not None:
                values["last_error"] = aside.reason[:500]
            session.execute(
                update(model).where(in_ids(session, model.id, ids)).values(values)
                .execution_options(synchronize_session=False)
            )
            summary.set_aside[aside.state] += len(ids)
        for item, failure in results.failed:
            row = session.get(model, item.id)
            if row is None:
                continue
            row.attempts += 1
            row.last_error = str(failure)[:500]
            if kind.dispose(session, item, failure, attempts=row.attempts, settings=settings, clock=clock):
                row.state, row.next_attempt_at = states.pending, now + settings.backoff(row.attempts)
                summary.retrying += 1
            else:
                row.state = states.failed
                summary.failed += 1
    results.clear()


def _release(session: Session, kind: QueueKind[Any], ids: list[int], error: str) -> None:
    """Hand claimed rows back as they were, due now, with no attempt counted."""
    model, states = kind.model, kind.states
    with transaction(session):
        session.execute(
            update(model)
            .where(in_ids(session, model.id, ids), model.state == states.sending)
            .values(state=states.pending, claimed_at=None, claimed_by=None, last_error=error[:500])
            .execution_options(synchronize_session=False)
        )
