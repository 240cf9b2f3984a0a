"""Workers benchmark: 1 against 3 worker processes on PostgreSQL, against a sink that takes
20 ms per message (like a slow relay), with zero duplicates required (S7).

    scripts/with-postgres.sh .venv/bin/python bench/workers.py [--count 300]"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiosmtpd.controller import Controller
from common import free_port, quiet_logging
from send import drop_postgres, engine_processes, postgres_database


class SlowSink:
    """aiosmtpd that answers DATA after 20 ms; connections are served concurrently."""

    def __init__(self, delay: float = 0.02) -> None:
        self.host, self.port, self.delay = "127.0.0.1", free_port(), delay
        self.recipients: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname=self.host, port=self.port)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        await asyncio.sleep(self.delay)
        with self._lock:
            self.recipients.update(envelope.rcpt_tos)
        return "250 OK"

    def start(self) -> SlowSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


def run(base_url: str, count: int, processes: int) -> tuple[float, Counter[str]]:
    sink = SlowSink().start()
    uri = postgres_database(base_url)
    try:
        return engine_processes(uri, sink, count, processes, batch_size=20), sink.recipients
    finally:
        sink.stop()
        drop_postgres(uri)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL", ""))
    args = parser.parse_args()
    if not args.postgres:
        raise SystemExit("workers: needs PostgreSQL; run under scripts/with-postgres.sh")
    quiet_logging()
    one, one_seen = run(args.postgres, args.count, 1)
    three, three_seen = run(args.postgres, args.count, 3)
    for label, seen in (("1 worker", one_seen), ("3 workers", three_seen)):
        duplicates = sum(seen.values()) - len(seen)
        if len(seen) != args.count or duplicates:
            raise SystemExit(f"workers: {label}: {len(seen)} recipients, {duplicates} duplicates")
    print(f"workers: 1 worker {args.count / one:.0f} msg/s, 3 workers {args.count / three:.0f} msg/s, "
          f"speed-up {one / three:.2f}x, 0 duplicates (N={args.count}, sink adds 20 ms per message)")


if __name__ == "__main__":
    main()
