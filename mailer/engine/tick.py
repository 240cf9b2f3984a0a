"""One pass over due work: the worker's interval job and `send-due` both call run_tick."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.engine.announcement_sender import (
    DeliveryQueue,
    DeliverySummary,
    finish_announcements,
    start_due_announcements,
)
from mailer.engine.departures import Departures
from mailer.engine.outbox_sender import OutboxQueue, OutboxSummary
from mailer.engine.queue import release_expired_claims, send_batch
from mailer.engine.settings import EngineSettings
from mailer.engine.transport import SmtpTransport
from mailer.mail.announcement import AnnouncementMail
from mailer.mail.transactional import TransactionalMail

log = logging.getLogger(__name__)


@dataclass
class TickSummary:
    outbox: OutboxSummary = field(default_factory=OutboxSummary)
    deliveries: DeliverySummary = field(default_factory=DeliverySummary)

    @property
    def server_unavailable(self) -> bool:
        return self.outbox.server_unavailable or self.deliveries.server_unavailable

    @property
    def busy(self) -> bool:
        o, d = self.outbox, self.deliveries
        return bool(o.sent or o.failed or o.retrying or d.sent or d.failed or d.retrying or d.skipped
                    or d.started or d.held or d.finished or self.server_unavailable)

    def describe(self) -> str:
        o, d = self.outbox, self.deliveries
        line = (
            f"outbox: {o.sent} sent, {o.retrying} retrying, {o.failed} failed, {o.dropped} dropped; "
            f"announcements: {d.sent} sent, {d.retrying} retrying, {d.failed} failed, {d.skipped} skipped"
        )
        for label, ids in (("started", d.started), ("held", d.held), ("finished", d.finished)):
            if ids:
                line += f"; {label} {', '.join(map(str, ids))}"
        if self.server_unavailable:
            line += " (mail server unavailable: will try again next tick)"
        return line


def run_tick(
    session: Session,
    *,
    open_transport: Callable[[], SmtpTransport],
    mail: TransactionalMail,
    announcement_mail: AnnouncementMail,
    settings: EngineSettings,
    clock: Clock,
    on_batch: Callable[[TickSummary], None] | None = None,
    take_new_work: Callable[[], None] | None = None,
    departures: Departures | None = None,
) -> TickSummary:
    """Start due announcements and take back rows claimed by workers that stopped (engine/claims.py),
    then send outbox mail and deliveries in turn over one connection.

    During a long send the outbox is looked at between delivery batches at most every
    outbox_check_seconds: a confirmation email never waits behind the send for longer.
    `take_new_work` runs just before each look at the outbox (the worker carries out queued join
    form posts there), so what it queues goes out in the same look. With `departures`, a delivery
    whose member left is withdrawn up to the moment it is written (J4, engine/departures.py)."""
    summary = TickSummary()
    outbox_queue, delivery_queue = OutboxQueue(mail, announcement_mail), DeliveryQueue(announcement_mail)
    start_due_announcements(session, clock=clock, hold_after=settings.hold_after, summary=summary.deliveries)
    for kind in (OutboxQueue, DeliveryQueue):
        release_expired_claims(session, kind, settings=settings, clock=clock)
    with open_transport() as transport:
        outbox_checked, outbox_claimed = float("-inf"), 0
        while True:
            if (
                outbox_claimed >= settings.batch_size
                or time.monotonic() - outbox_checked >= settings.outbox_check_seconds
            ):
                if take_new_work is not None:
                    take_new_work()
                outbox_claimed, outbox = send_batch(session, transport, outbox_queue, settings=settings, clock=clock)
                outbox_checked = time.monotonic()
                summary.outbox.add(outbox)
                if outbox.server_unavailable:
                    break
            else:
                outbox_claimed = 0  # not looked at this time round: a claim costs more than a batch's wait
            delivery_claimed, deliveries = send_batch(
                session, transport, delivery_queue, settings=settings, clock=clock, departures=departures
            )
            summary.deliveries.add(deliveries)
            if on_batch is not None and (outbox_claimed or delivery_claimed):
                on_batch(summary)
            if deliveries.server_unavailable:
                break
            if outbox_claimed < settings.batch_size and delivery_claimed < settings.batch_size:
                break
    finish_announcements(session, clock=clock, summary=summary.deliveries)
    if summary.busy:
        log.info("tick: %s", summary.describe())
    return summary
