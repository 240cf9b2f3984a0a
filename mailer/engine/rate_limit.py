"""An optional sending rate limit, honoured exactly over any 60-second window (S2)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

from mailer.clock import Clock

WINDOW = timedelta(seconds=60)


class RateLimiter:
    """At most `per_minute` sends in any 60 seconds: before each send, wait until the oldest of
    the last `per_minute` sends is a full minute old. The clock and the sleep are injected."""

    def __init__(self, per_minute: int, clock: Clock, sleep: Callable[[float], None]) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[datetime] = deque(maxlen=per_minute)

    def wait(self) -> None:
        """Block until one more send is allowed, then count it."""
        if len(self._sent) == self.per_minute:
            free_at = self._sent[0] + WINDOW
            while (now := self._clock.now()) < free_at:
                self._sleep((free_at - now).total_seconds())
        self._sent.append(self._clock.now())


class Unlimited:
    def wait(self) -> None:
        return None
