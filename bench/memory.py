"""Memory benchmark: peak RSS of a worker sending to 1,000 and to 100,000 members (S7).

    .venv/bin/python bench/memory.py [--counts 1000,100000]
    scripts/with-postgres.sh .venv/bin/python bench/memory.py     # PostgreSQL too

Each send runs in its own worker process (so the peaks are separate), on a database seeded
beforehand by this process; the worker reports its VmHWM (peak resident set) after the send.
Recipients are streamed in batches, so the difference between the sizes should stay small
(target: under 20 MB)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import dispose, make_app, migrated_sqlite, quiet_logging
from send import announce, drop_postgres, postgres_database, seed, sent_count
from sinks import best_sink


def peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def worker(database_uri: str, host: str, port: str) -> None:
    from mailer.worker.runner import run_tick_for_app

    class Sink:
        pass

    sink = Sink()
    sink.host, sink.port = host, int(port)  # type: ignore[attr-defined]
    app = make_app(database_uri, sink)
    while True:
        summary = run_tick_for_app(app)
        if summary.deliveries.sent == 0 and not summary.deliveries.started:
            break
    print(peak_kib(), sent_count(app), flush=True)


def measure(database_uri: str, sink: object, count: int) -> tuple[int, int]:
    app = make_app(database_uri, sink)
    seed(app, count)
    announce(app)
    dispose(app)
    out = subprocess.run(
        [sys.executable, __file__, "--worker", database_uri, sink.host, str(sink.port)],  # type: ignore[attr-defined]
        check=True, capture_output=True, text=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--counts", default="1000,100000")
    parser.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL", ""))
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    quiet_logging()
    sink = best_sink().start()
    results: dict[str, list[tuple[int, int]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            template = migrated_sqlite(Path(tmp), "template.db")
            for count in counts:
                target = Path(tmp) / f"m{count}.db"
                target.write_bytes(template.read_bytes())
                results.setdefault("sqlite", []).append(measure(f"sqlite:///{target}", sink, count))
                if args.postgres:
                    uri = postgres_database(args.postgres)
                    try:
                        results.setdefault("postgresql", []).append(measure(uri, sink, count))
                    finally:
                        drop_postgres(uri)
    finally:
        sink.stop()
    for backend, rows in results.items():
        for count, (_peak, sent) in zip(counts, rows, strict=True):
            if sent != count:
                raise SystemExit(f"memory: {backend} {count}: only {sent} sent")
        low, high = rows[0][0], rows[-1][0]
        print(f"memory ({backend}): peak RSS {low / 1024:.1f} MiB at {counts[0]} members, "
              f"{high / 1024:.1f} MiB at {counts[-1]}; difference {(high - low) / 1024:.1f} MiB (target < 20)")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:])
    else:
        main()
