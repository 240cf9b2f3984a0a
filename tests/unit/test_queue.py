"""The queue loop's shared decisions (engine/queue.py): when a failed attempt is tried again, and how
batch summaries add up the rows that were not sent."""

from __future__ import annotations

from collections import Counter

import pytest

from mailer.engine.announcement_sender import DeliverySummary
from mailer.engine.outbox_sender import OutboxSummary
from mailer.engine.queue import QueueSummary, retry_allowed
from mailer.engine.settings import EngineSettings
from mailer.engine.transport import PermanentFailure, TransientFailure
from mailer.models import DeliveryState, OutboxState

SETTINGS = EngineSettings(worker_id="unit", envelope_from="noreply@forum.test", max_attempts=3)


@pytest.mark.parametrize(("attempts", "again"), [(1, True), (2, True), (3, False), (4, False)])
def test_a_passing_failure_is_tried_again_until_max_attempts(attempts, again):
    """S4: a 4xx or a dropped connection is retried while fewer than max_attempts were used, this one included."""
    assert retry_allowed(TransientFailure(451, "try later"), attempts=attempts, settings=SETTINGS) is again


@pytest.mark.parametrize("attempts", [1, 2, 3])
def test_a_permanent_refusal_is_never_tried_again(attempts):
    """S4: a 5xx fails at once, whatever attempts are left."""
    assert retry_allowed(PermanentFailure(550, "no such user"), attempts=attempts, settings=SETTINGS) is False


def test_summaries_add_up_rows_set_aside_by_the_state_they_were_left_in():
    """A batch counts rows not sent by their new state; the outbox reads its dropped rows and deliveries
    their skipped ones from that count, and rows handed back (paused) count as neither."""
    outbox = OutboxSummary()
    outbox.add(QueueSummary(sent=2, retrying=1, set_aside=Counter({OutboxState.DROPPED: 1})))
    outbox.add(QueueSummary(sent=1, failed=1, set_aside=Counter({OutboxState.DROPPED: 2}), server_unavailable=True))
    assert (outbox.sent, outbox.retrying, outbox.failed, outbox.dropped) == (3, 1, 1, 3)
    assert outbox.server_unavailable

    deliveries = DeliverySummary()
    deliveries.add(QueueSummary(sent=5, set_aside=Counter({DeliveryState.SKIPPED: 2, DeliveryState.PENDING: 4})))
    deliveries.add(QueueSummary(set_aside=Counter({DeliveryState.SKIPPED: 1})))
    assert (deliveries.sent, deliveries.skipped) == (5, 3)
    assert not deliveries.server_unavailable
