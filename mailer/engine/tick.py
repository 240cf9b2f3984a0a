"""One pass over due work: the worker's interval job and `send-due` both call run_tick."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from ..clock import Clock
from ..transactional import TransactionalMail
from .outbox_sender import OutboxSummary, send_outbox_batch
from .settings import EngineSettings
from .transport import SmtpTransport

log = logging.getLogger(__name__)


@dataclass
class TickSummary:
    outbox: OutboxSummary = field(default_factory=OutboxSummary)

    def describe(self) -> str:
        o = self.outbox
        line = f"outbox: {o.sent} sent, {o.retrying} retrying, {o.failed} failed, {o.dropped} dropped"
        if o.server_unavailable:
            line += " (mail server unavailable: will try again next tick)"
        return line


def run_tick(
    session: Session,
    *,
    open_transport: Callable[[], SmtpTransport],
    mail: TransactionalMail,
    settings: EngineSettings,
    clock: Clock,
) -> TickSummary:
    """Drain due outbox mail over one reused connection; the loop and the sleep live elsewhere."""
    summary = TickSummary()
    with open_transport() as transport:
        while True:
            claimed, batch = send_outbox_batch(session, transport, mail, settings=settings, clock=clock)
            summary.outbox.add(batch)
            if claimed == 0 or batch.server_unavailable or claimed < settings.batch_size:
                break
    if summary.outbox.sent or summary.outbox.failed or summary.outbox.retrying or summary.outbox.server_unavailable:
        log.info("tick: %s", summary.describe())
    return summary
