"""The engine's own settings: built by Settings.engine_settings, so the engine never reads configuration."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import timedelta

from mailer.bounces.records import BouncePolicy
from mailer.mail.verp import VerpKind, verp_address


@dataclass(frozen=True)
class EngineSettings:
    worker_id: str
    envelope_from: str
    batch_size: int = 100
    # Results are written after at most this many messages or this long, whichever comes first:
    # after a crash, what was accepted but not yet written is sent again (S3), so this bounds the
    # duplicates to a quarter of a second's worth, without a commit for every few messages.
    mark_every: int = 100
    mark_seconds: float = 0.25
    max_attempts: int = 8
    retry_base: timedelta = timedelta(seconds=30)
    retry_max: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=5)
    # A worker whose heartbeat is older than this has stopped: its claims go back at once (Settings
    # derives it from the tick interval); the lease above is the last resort.
    stale_after: timedelta = timedelta(seconds=15)
    recheck_seconds: float = 0.2
    outbox_check_seconds: float = 1.0  # during a long send, transactional mail waits at most this long
    hold_after: timedelta = timedelta(hours=6)
    # The S4 rule, the suppression key, the bounce address (empty: bounces go to envelope_from) and
    # the VERP key (empty: every message has the fixed bounce address): Settings.bounce_policy.
    bounce_rules: BouncePolicy = field(default_factory=BouncePolicy)
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def time_to_mark(self, unwritten: int, last_marked: float) -> bool:
        """Whether results waiting to be written (since monotonic `last_marked`) should be now."""
        return unwritten >= self.mark_every or (unwritten > 0 and time.monotonic() - last_marked >= self.mark_seconds)

    def bounce_policy(self) -> BouncePolicy:
        """What recording a delivery's permanent failure needs (the senders call this)."""
        return self.bounce_rules

    def envelope_for(self, kind: VerpKind, row_id: int) -> str:
        """The envelope sender (Return-Path) for one row: VERP when a bounce address is set (issue 8)."""
        rules = self.bounce_rules
        if not rules.bounce_address:
            return self.envelope_from
        if not rules.verp_key:
            return rules.bounce_address
        return verp_address(rules.verp_key, rules.bounce_address, kind, row_id)

    def backoff(self, attempts: int) -> timedelta:
        """Exponential backoff with jitter: base * 2^(n-1), capped, then 50-100% of that."""
        delay: timedelta = min(self.retry_base * (2 ** max(0, attempts - 1)), self.retry_max)
        return delay * (0.5 + self.rng.random() / 2)

