"""Engine settings, read once from config so the engine itself never touches Flask."""

from __future__ import annotations

import os
import random
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..addresses import suppression_key
from ..bounces import BouncePolicy
from ..verp import VerpKind, verp_address, verp_key


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
    recheck_seconds: float = 0.2
    outbox_check_seconds: float = 1.0  # during a long send, transactional mail waits at most this long
    bounce_threshold: int = 3
    suppression_key: bytes = b""
    hold_after: timedelta = timedelta(hours=6)
    bounce_decay: timedelta = timedelta(days=60)  # only permanent bounces this recent count
    bounce_address: str = ""  # empty: bounces go to envelope_from
    verp_key: bytes = b""  # empty: no VERP, every message has the fixed bounce address
    rng: random.Random = field(default_factory=random.Random, compare=False)

    @classmethod
    def from_config(cls, config: dict[str, Any], envelope_from: str) -> EngineSettings:
        return cls(
            worker_id=config.get("MAILER_WORKER_ID") or f"{socket.gethostname()}:{os.getpid()}",
            envelope_from=envelope_from,
            batch_size=int(config["MAILER_BATCH_SIZE"]),
            max_attempts=int(config["MAILER_OUTBOX_MAX_ATTEMPTS"]),
            retry_base=timedelta(seconds=float(config["MAILER_RETRY_BASE_SECONDS"])),
            retry_max=timedelta(seconds=float(config["MAILER_RETRY_MAX_SECONDS"])),
            lease=timedelta(seconds=float(config["MAILER_CLAIM_LEASE_SECONDS"])),
            recheck_seconds=float(config["MAILER_RECHECK_SECONDS"]),
            bounce_threshold=int(config["MAILER_BOUNCE_THRESHOLD"]),
            suppression_key=suppression_key(config["MAILER_SUPPRESSION_KEY"], config["SECRET_KEY"]),
            hold_after=timedelta(hours=float(config["MAILER_HOLD_AFTER_HOURS"])),
            bounce_decay=timedelta(days=float(config.get("MAILER_BOUNCE_DECAY_DAYS", 60))),
            bounce_address=str(config.get("MAILER_BOUNCE_ADDRESS") or ""),
            verp_key=verp_key(config["SECRET_KEY"]) if _is_on(config.get("MAILER_VERP", True)) else b"",
        )

    def time_to_mark(self, unwritten: int, last_marked: float) -> bool:
        """Whether results waiting to be written (since monotonic `last_marked`) should be now."""
        return unwritten >= self.mark_every or (unwritten > 0 and time.monotonic() - last_marked >= self.mark_seconds)

    def bounce_policy(self, max_bytes: int = 10 * 1024 * 1024) -> BouncePolicy:
        return BouncePolicy(
            threshold=self.bounce_threshold, decay=self.bounce_decay, suppression_key=self.suppression_key,
            bounce_address=self.bounce_address, verp_key=self.verp_key, max_bytes=max_bytes,
        )

    def envelope_for(self, kind: VerpKind, row_id: int) -> str:
        """The envelope sender (Return-Path) for one row: VERP when a bounce address is set (issue 8)."""
        if not self.bounce_address:
            return self.envelope_from
        if not self.verp_key:
            return self.bounce_address
        return verp_address(self.verp_key, self.bounce_address, kind, row_id)

    def backoff(self, attempts: int) -> timedelta:
        """Exponential backoff with jitter: base * 2^(n-1), capped, then 50-100% of that."""
        delay = min(self.retry_base * (2 ** max(0, attempts - 1)), self.retry_max)
        return delay * (0.5 + self.rng.random() / 2)


def _is_on(value: object) -> bool:
    """Config flags may come from FLASK_* environment variables as strings."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)
