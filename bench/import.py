"""Import benchmark: mailer's CSV import against a bare csv + executemany loader, rows/s and peak memory.

    .venv/bin/python bench/import.py [--rows 100000] [--rounds 1] [--json]

One generated file of N member rows (a quarter carry consent evidence, the rest
become pending with a confirmation queued; groups on most rows; every tenth name
non-ASCII) is loaded into a fresh copy of the migrated SQLite schema three ways,
each in its own subprocess so each peak RSS (VmHWM) is its own:

  apply     mailer.members.csv.apply.apply_import: strict UTF-8 decoding, address
            validation and normalisation, duplicate and suppression checks, chunked
            lookups, multi-row inserts of members and group links, consent events
            (record_consents) and staggered outbox rows (enqueue_mails), a commit
            per chunk of 500.
  baseline  csv.reader + sqlite3 executemany writing the same rows to the same
            tables (with the same pragmas and a commit per chunk of 500), with no
            validation at all: the floor for this schema on this machine.
  preview   mailer.members.csv.plan.plan_import over the same file into an empty list of
            members: what the preview page costs (reads only).

Each run checks the database afterwards: apply and baseline must leave identical
table counts, or the run fails. Peak RSS is reported whole and as growth over the
process's RSS just before the work started (the libraries loaded are not the
import's doing). With --rounds above 1 the order alternates and medians are shown."""

from __future__ import annotations

import argparse
import csv
import json
import platform
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fresh_copy, median, migrated_sqlite, quiet_logging, rate

CHUNK = 500
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GROUP_CHOICES = ["Forum news", "Forum news;Local Offer working group", "", "Voice and Influence group"]
SOCIAL = ["yes", "no", "prefer_not_to_say", ""]
VARIANTS = ("apply", "baseline", "preview")
EVIDENCE = ["2025-09-14", "Paper sign-up sheet, coffee morning", "Yes, email me forum news."]
TABLES = ("member", "member_group", "consent_event", "outbox")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the generated file (default 100000)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each variant; medians reported (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.rounds < 1:
        parser.error("--rows and --rounds must be at least 1")
    return args


# --- the data ------------------------------------------------------------------


def write_file(path: Path, rows: int) -> int:
    """The generated members file; returns its size in bytes."""
    with open(path, "w", encoding="utf-8", newline="") as target:
        writer = csv.writer(target)
        writer.writerow(
            ["email", "name", "groups", "social_media", "consent_date", "consent_source", "consent_wording"]
        )
        for i in range(rows):
            name = f"Zoë Parent {i}" if i % 10 == 0 else f"Parent {i}"
            evidence = EVIDENCE if i % 4 == 0 else ["", "", ""]
            writer.writerow([f"parent.{i}@example.org", name, GROUP_CHOICES[i % 4], SOCIAL[i % 4], *evidence])
    return path.stat().st_size


def table_counts(database: str) -> dict[str, int]:
    connection = sqlite3.connect(database)
    try:
        return {t: connection.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in TABLES}
    finally:
        connection.close()


# --- memory --------------------------------------------------------------------


def memory_kib() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process in KiB, from /proc (getrusage for the peak elsewhere)."""
    current = peak = 0
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    current = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1])
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return current, peak


# --- the contestants (each runs in its own subprocess) --------------------------


def run_apply(database: str, csv_path: str) -> int:
    from common import bench_config

    from mailer import create_app
    from mailer.clock import FrozenClock
    from mailer.extensions import db
    from mailer.members.csv.apply import apply_import
    from mailer.members.csv.parse import read_file_lines
    from mailer.settings import settings_of

    app = create_app(bench_config(f"sqlite:///{database}", None))
    clock = FrozenClock(NOW)
    app.extensions["mailer.clock"] = clock
    quiet_logging()
    with app.app_context():
        settings = settings_of(app).import_settings
        db.session.execute(db.text("SELECT 1"))  # connect and set the pragmas outside the timing
        db.session.rollback()
        started = mark_start()
        summary = apply_import(db.session, read_file_lines(csv_path), settings=settings,
                                          clock=clock)
        report(started, summary.total)
        return summary.added


def run_preview(database: str, csv_path: str) -> int:
    from common import bench_config

    from mailer import create_app
    from mailer.clock import FrozenClock
    from mailer.extensions import db
    from mailer.members.csv.parse import read_file_lines
    from mailer.members.csv.plan import plan_import, summarise
    from mailer.settings import settings_of

    app = create_app(bench_config(f"sqlite:///{database}", None))
    clock = FrozenClock(NOW)
    quiet_logging()
    with app.app_context():
        key = settings_of(app).import_settings.suppression_key
        db.session.execute(db.text("SELECT 1"))
        db.session.rollback()
        started = mark_start()
        summary = summarise(
            plan_import(db.session, read_file_lines(csv_path), suppression_key=key, clock=clock)
        )
        report(started, summary.total)
        return summary.added


def run_baseline(database: str, csv_path: str) -> int:
    """csv.reader and executemany: the same rows into the same tables, nothing checked."""
    connection = sqlite3.connect(database)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        connection.execute(f"PRAGMA {pragma}")
    groups = dict(connection.execute('SELECT name, id FROM "group"').fetchall())
    now = NOW.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy writes it
    started = mark_start()
    rows = 0
    with open(csv_path, encoding="utf-8", newline="") as source:
        reader = csv.reader(source)
        next(reader)
        chunk: list[list[str]] = []
        for cells in reader:
            chunk.append(cells)
            rows += 1
            if len(chunk) == CHUNK:
                _baseline_chunk(connection, chunk, groups, now)
                chunk = []
        if chunk:
            _baseline_chunk(connection, chunk, groups, now)
    report(started, rows)
    connection.close()
    return rows


def _baseline_chunk(connection: sqlite3.Connection, chunk: list[list[str]], groups: dict[str, int], now: str) -> None:
    connection.executemany(
        "INSERT INTO member (email, email_key, name, status, social_media, token_version, link_key, bounce_count, "
        "created_at, updated_at, confirmed_at, last_confirmation_sent_at) VALUES (?, ?, ?, ?, ?, 1, ?, 0, ?, ?, ?, ?)",
        [
            (c[0], c[0].lower(), c[1], "member" if c[4] else "pending", c[3] or "prefer_not_to_say",
             secrets.token_urlsafe(16), now, now, now if c[4] else None, None if c[4] else now)
            for c in chunk
        ],
    )
    keys = [c[0].lower() for c in chunk]
    ids = dict(
        connection.execute(
            f"SELECT email_key, id FROM member WHERE email_key IN ({','.join('?' * len(keys))})", keys
        ).fetchall()
    )
    connection.executemany(
        "INSERT INTO member_group (member_id, group_id) VALUES (?, ?)",
        [(ids[c[0].lower()], groups[g]) for c in chunk for g in c[2].split(";") if g],
    )
    connection.executemany(
        "INSERT INTO consent_event (member_id, action, method, occurred_at, email, detail) "
        "VALUES (?, 'imported', 'import', ?, ?, ?)",
        [
            (ids[c[0].lower()], now, c[0],
             json.dumps({"evidence": {"consent_date": c[4], "consent_source": c[5], "consent_wording": c[6]}}))
            for c in chunk
            if c[4]
        ],
    )
    connection.executemany(
        "INSERT INTO outbox (kind, member_id, state, attempts, created_at, next_attempt_at) "
        "VALUES ('confirm', ?, 'pending', 0, ?, ?)",
        [(ids[c[0].lower()], now, now) for c in chunk if not c[4]],
    )
    connection.commit()


def report(started: float, rows: int) -> None:
    """The child's one line of JSON: time since `started`, and memory."""
    seconds = time.perf_counter() - started
    _, peak = memory_kib()
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_kib": peak, "before_kib": BEFORE_KIB}), flush=True)


BEFORE_KIB = 0


def mark_start() -> float:
    """Everything is loaded and connected: note the RSS the run's growth is measured from, start the clock."""
    global BEFORE_KIB
    BEFORE_KIB = memory_kib()[0]
    return time.perf_counter()


def child(args: argparse.Namespace) -> int:
    {"apply": run_apply, "preview": run_preview, "baseline": run_baseline}[args.child](args.database, args.csv)
    return 0


# --- the run ------------------------------------------------------------------


def run_variant(variant: str, database: str, csv_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--database", database, "--csv", str(csv_path)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["counts"] = table_counts(database)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="mailer-bench-import-") as tmp:
        directory = Path(tmp)
        template = migrated_sqlite(directory, "template.db")
        csv_path = directory / "members.csv"
        size = write_file(csv_path, args.rows)
        for i in range(args.rounds):
            order = ("apply", "baseline") if i % 2 == 0 else ("baseline", "apply")
            for variant in (*order, "preview"):
                database = fresh_copy(template, directory, f"{variant}-{i}.db")
                outcome = run_variant(variant, database[len("sqlite:///"):], csv_path)
                results[variant].append(outcome)
                Path(database[len("sqlite:///"):]).unlink()
                if not args.json:
                    print(
                        f"round {i + 1} {variant:8}: {rate(outcome['rows'], outcome['seconds']):8.0f} rows/s "
                        f"({outcome['seconds']:.2f} s), peak RSS {outcome['peak_kib'] / 1024:.0f} MiB "
                        f"(+{(outcome['peak_kib'] - outcome['before_kib']) / 1024:.0f} MiB during the run)",
                        flush=True,
                    )
            applied, baseline = results["apply"][-1]["counts"], results["baseline"][-1]["counts"]
            if applied != baseline or applied["member"] != args.rows:
                raise SystemExit(f"round {i + 1}: the import wrote {applied}, the baseline {baseline}")
            if results["preview"][-1]["counts"]["member"] != 0:
                raise SystemExit("the preview wrote to the database")

    def figures(variant: str) -> dict[str, float]:
        runs = results[variant]
        return {
            "rows_per_second": round(median([rate(r["rows"], r["seconds"]) for r in runs]), 1),
            "seconds": round(median([r["seconds"] for r in runs]), 3),
            "peak_rss_mib": round(median([r["peak_kib"] / 1024 for r in runs]), 1),
            "growth_mib": round(median([(r["peak_kib"] - r["before_kib"]) / 1024 for r in runs]), 1),
        }

    apply_figures, baseline_figures = figures("apply"), figures("baseline")
    return {
        "benchmark": "import",
        "rows": args.rows,
        "rounds": args.rounds,
        "file_mib": round(size / (1024 * 1024), 1),
        "database": "sqlite",
        "apply": apply_figures,
        "baseline": baseline_figures,
        "preview": figures("preview"),
        "ratio": round(apply_figures["rows_per_second"] / baseline_figures["rows_per_second"], 3),
        "peak_rss_ratio": round(apply_figures["peak_rss_mib"] / baseline_figures["peak_rss_mib"], 2),
        "tables": results["apply"][-1]["counts"],
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    a, b, p = result["apply"], result["baseline"], result["preview"]
    print(f"(file: {result['rows']} rows, {result['file_mib']} MiB; wrote {result['tables']})")
    print(f"preview: {p['rows_per_second']:.0f} rows/s, peak RSS {p['peak_rss_mib']:.0f} MiB (+{p['growth_mib']:.0f})")
    print(
        f"import: apply_import {a['rows_per_second']:.0f} rows/s, peak RSS {a['peak_rss_mib']:.0f} MiB "
        f"(+{a['growth_mib']:.0f}); csv+executemany {b['rows_per_second']:.0f} rows/s, peak RSS "
        f"{b['peak_rss_mib']:.0f} MiB (+{b['growth_mib']:.0f}); ratio {result['ratio']:.2f} "
        f"(N={result['rows']}, median of {result['rounds']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
