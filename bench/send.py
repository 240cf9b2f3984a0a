"""Sending-engine benchmark: one announcement to N members, against a bare smtplib loop.

    .venv/bin/python bench/send.py [--count 5000] [--rounds 3] [--json]
    scripts/with-postgres.sh .venv/bin/python bench/send.py     # adds the two-process figure

Engine: N confirmed members and one due announcement; the engine starts it (one delivery row per
member), claims batches, renders each message from the announcement rendered once, sends over one
reused connection and marks rows sent. Timed from the tick's start until every row is sent; imports
and template compiling happen before (warm_up), as in a running worker. Baseline: the same N
messages built beforehand (outside the timing) sent by a bare smtplib loop over one connection to
the same sink. Third contestant: the engine without the look for members who left before each write
(J4, engine/departures.py), so the output gives what that check costs. With TEST_POSTGRES_URL (or
--postgres) it also times two engine processes sharing one announcement on PostgreSQL, with and without
the check. The sink is Postfix's smtp-sink when it can be fetched (bench/sinks.py),
else aiosmtpd, and the output says which. Rounds alternate which contestant goes first; medians are
reported."""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import dispose, make_app, median, migrated_sqlite, quiet_logging, rate
from sinks import best_sink
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from mailer.announcements.lifecycle import AnnouncementDraft, create_announcement, send_announcement_now
from mailer.clock import SystemClock
from mailer.extensions import db
from mailer.mail.announcement import AnnouncementContent, AnnouncementMail
from mailer.models import (
    Announcement,
    AnnouncementState,
    Delivery,
    DeliveryState,
    Member,
    MemberStatus,
    SocialMedia,
    new_link_key,
)
from mailer.settings import settings_of
from mailer.worker.runner import run_tick_for_app

SAMPLE = (Path(__file__).resolve().parents[1] / "tests" / "data" / "samples" / "revisit-survey.md").read_text()


def seed(app: Any, count: int) -> list[tuple[str, str, str]]:
    now = SystemClock().now()
    with app.app_context():
        db.session.execute(insert(Member), [
            {"email": f"parent{i:06d}@example.org", "email_key": f"parent{i:06d}@example.org",
             "name": f"Zoë Parent {i}" if i % 10 == 0 else f"Parent {i}", "status": MemberStatus.MEMBER,
             "social_media": SocialMedia.NO, "token_version": 1, "link_key": new_link_key(), "bounce_count": 0,
             "created_at": now,
             "updated_at": now, "confirmed_at": now}
            for i in range(count)
        ])
        db.session.commit()
        members = db.session.execute(select(Member.link_key, Member.email, Member.name).order_by(Member.id)).all()
        db.session.remove()
    return [tuple(m) for m in members]  # type: ignore[misc]


def announce(app: Any) -> int:
    with app.app_context():
        item = create_announcement(
            db.session,
            AnnouncementDraft(subject="Inspectors are coming back", body_markdown=SAMPLE),
            admin_id=None,
            clock=SystemClock(),
        )
        send_announcement_now(db.session, item, clock=SystemClock())
        db.session.commit()
        return item.id


def warm_up(app: Any) -> None:
    """Build one message of the due announcement, unsent, before the clock starts: a worker is a
    long-running process, so imports and compiling the email templates are not per-message costs.
    Each tick still renders the announcement and opens its connection inside the timing."""
    with app.app_context():
        item = db.session.scalars(select(Announcement)).first()
        mail = AnnouncementMail(app.jinja_env, settings_of(app).mail_settings, secret_key="warm", clock=SystemClock())
        content = AnnouncementContent(item.id, item.subject, item.body_markdown, item.updated_at)
        mail.build_for_member(
            content,
            link_key=new_link_key(),
            token_version=1,
            to_address="warm@example.org",
            to_name="Warm",
            now=SystemClock().now(),
        )
        db.session.remove()


def sent_count(app: Any) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count()).where(Delivery.state == DeliveryState.SENT)) or 0
        db.session.remove()
        return n


def without_departure_check(app: Any) -> None:
    """The engine as it was before issue 17: no look for members who left before each write (J4), so the
    check's cost can be measured in the same run."""
    app.extensions["mailer.departures"] = (os.getpid(), None)


def engine_once(database_uri: str, sink: Any, count: int, check: bool = True) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) for one send; the sink's CPU is its own process's."""
    app = make_app(database_uri, sink)
    if not check:
        without_departure_check(app)
    seed(app, count)
    announce(app)
    warm_up(app)
    started, cpu_started = time.perf_counter(), time.process_time()
    while sent_count(app) < count:
        summary = run_tick_for_app(app)
        if summary.deliveries.failed or summary.server_unavailable:
            raise SystemExit(f"engine: {summary.describe()}")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    dispose(app)
    return elapsed, cpu


def baseline_once(database_uri: str, sink: Any, count: int) -> tuple[float, float]:
    app = make_app(database_uri, sink)
    members = seed(app, count)
    with app.app_context():
        mail = AnnouncementMail(app.jinja_env, settings_of(app).mail_settings, secret_key="bench", clock=SystemClock())
        content = AnnouncementContent(1, "Inspectors are coming back", SAMPLE, SystemClock().now())
        now = SystemClock().now()
        prebuilt = [(email, mail.build_for_member(content, link_key=key, token_version=1, to_address=email,
                                                  to_name=name, now=now)) for key, email, name in members]
    dispose(app)
    started, cpu_started = time.perf_counter(), time.process_time()
    with smtplib.SMTP(sink.host, sink.port) as smtp:
        for email, raw in prebuilt:
            smtp.sendmail("noreply@forum.test", [email], raw)
    return time.perf_counter() - started, time.process_time() - cpu_started


def postgres_database(base_url: str) -> str:
    url = make_url(base_url)
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    uri = url.set(database=name).render_as_string(hide_password=False)
    from flask_migrate import upgrade

    app = make_app(uri, None)
    with app.app_context():
        upgrade()
    dispose(app)
    quiet_logging()
    return uri


def drop_postgres(uri: str) -> None:
    url = make_url(uri)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


def engine_processes(database_uri: str, sink: Any, count: int, processes: int, batch_size: int = 100,
                     check: bool = True) -> float:
    """N worker processes share one announcement on PostgreSQL; timed from 'go' until the last
    worker saw every row sent (not including the processes' exit)."""
    app = make_app(database_uri, sink)
    seed(app, count)
    announce(app)
    dispose(app)
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", database_uri, sink.host, str(sink.port), str(i)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "BENCH_BATCH_SIZE": str(batch_size), "BENCH_CHECK": "1" if check else "0"},
        )
        for i in range(processes)
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    started = time.monotonic()
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    finished = []
    for worker in workers:
        assert worker.stdout is not None
        finished.append(float(worker.stdout.readline().split()[1]))  # "done <monotonic>"
        worker.wait(600)
    elapsed = max(finished) - started  # CLOCK_MONOTONIC is one clock for every process here
    app = make_app(database_uri, sink)
    if sent_count(app) != count:
        raise SystemExit(f"{processes} processes: only {sent_count(app)} of {count} sent")
    dispose(app)
    return elapsed


def worker_main(database_uri: str, host: str, port: str, index: str) -> None:
    class Sink:
        pass

    sink = Sink()
    sink.host, sink.port = host, int(port)  # type: ignore[attr-defined]
    app = make_app(
        database_uri,
        sink,
        MAILER_WORKER_ID=f"bench-{index}",
        MAILER_BATCH_SIZE=int(os.environ.get("BENCH_BATCH_SIZE", "100")),
    )
    if os.environ.get("BENCH_CHECK") == "0":
        without_departure_check(app)
    warm_up(app)
    print("ready", flush=True)
    sys.stdin.readline()
    while True:
        summary = run_tick_for_app(app)
        with app.app_context():
            unfinished = db.session.scalar(
                select(func.count()).where(Announcement.state != AnnouncementState.SENT)
            ) or 0
            db.session.remove()
        if unfinished == 0:
            print(f"done {time.monotonic()}", flush=True)  # before the interpreter's own shutdown
            break
        if not (summary.deliveries.sent or summary.deliveries.started):
            time.sleep(0.02)  # another worker is starting it or holds the last batch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL", ""))
    parser.add_argument("--aiosmtpd", action="store_true", help="use the aiosmtpd sink even if smtp-sink is available")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    quiet_logging()
    sink = best_sink(prefer_aiosmtpd=args.aiosmtpd).start()
    engine: list[float] = []
    baseline: list[float] = []
    engine_cpu: list[float] = []
    baseline_cpu: list[float] = []
    unchecked: list[float] = []
    unchecked_cpu: list[float] = []
    two: list[float] = []
    two_unchecked: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            template = migrated_sqlite(Path(tmp), "template.db")
            for round_number in range(args.rounds):
                def fresh(tag: str, round_number: int = round_number) -> str:
                    target = Path(tmp) / f"{tag}{round_number}.db"
                    target.write_bytes(template.read_bytes())
                    return f"sqlite:///{target}"

                order = [("engine", engine, engine_cpu), ("baseline", baseline, baseline_cpu),
                         ("unchecked", unchecked, unchecked_cpu)]
                for name, results, cpu_times in order if round_number % 2 == 0 else reversed(order):
                    if name == "baseline":
                        elapsed, cpu = baseline_once(fresh(name), sink, args.count)
                    else:
                        elapsed, cpu = engine_once(fresh(name), sink, args.count, check=name == "engine")
                    results.append(elapsed)
                    cpu_times.append(cpu)
                if args.postgres:
                    for check in (True, False) if round_number % 2 == 0 else (False, True):
                        uri = postgres_database(args.postgres)
                        try:
                            (two if check else two_unchecked).append(
                                engine_processes(uri, sink, args.count, 2, check=check))
                        finally:
                            drop_postgres(uri)
    finally:
        sink.stop()
    engine_rate, baseline_rate = rate(args.count, median(engine)), rate(args.count, median(baseline))
    result: dict[str, Any] = {
        "count": args.count, "rounds": args.rounds, "sink": sink.name,
        "engine_per_second": round(engine_rate), "baseline_per_second": round(baseline_rate),
        "ratio": round(engine_rate / baseline_rate, 2),
        # CPU of the sending process per message (the sink's is not in it): the figure the machine's load moves least.
        "engine_cpu_us_per_message": round(median(engine_cpu) / args.count * 1e6, 1),
        "baseline_cpu_us_per_message": round(median(baseline_cpu) / args.count * 1e6, 1),
        # The same engine without the look for members who left before each write (J4): what that look costs.
        "unchecked_ratio": round(rate(args.count, median(unchecked)) / baseline_rate, 2),
        "unchecked_cpu_us_per_message": round(median(unchecked_cpu) / args.count * 1e6, 1),
        "check_keeps": round(median(unchecked) / median(engine), 3),
    }
    if two:
        result["two_processes_postgres_per_second"] = round(rate(args.count, median(two)))
        result["two_process_ratio"] = round(rate(args.count, median(two)) / baseline_rate, 2)
        result["two_process_unchecked_ratio"] = round(rate(args.count, median(two_unchecked)) / baseline_rate, 2)
        result["two_process_check_keeps"] = round(median(two_unchecked) / median(two), 3)
    if args.json:
        print(json.dumps(result))
        return
    line = (f"send: engine {result['engine_per_second']} msg/s, bare smtplib {result['baseline_per_second']} msg/s, "
            f"ratio {result['ratio']}; CPU per message {result['engine_cpu_us_per_message']} us engine, "
            f"{result['baseline_cpu_us_per_message']} us bare loop (N={args.count}, median of {args.rounds}, "
            f"sink: {sink.name})")
    print(line)
    print(f"send: without the check for members who left (J4) ratio {result['unchecked_ratio']}, CPU per message "
          f"{result['unchecked_cpu_us_per_message']} us: the check keeps {result['check_keeps']:.1%} of the speed")
    if two:
        print(f"send: two engine processes on PostgreSQL {result['two_processes_postgres_per_second']} msg/s, "
              f"ratio {result['two_process_ratio']} against the one-connection bare loop; without the check "
              f"{result['two_process_unchecked_ratio']} (the check keeps {result['two_process_check_keeps']:.1%})")
    else:
        print("send: two-process figure skipped (no PostgreSQL: run under scripts/with-postgres.sh)")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        worker_main(*sys.argv[2:])
    else:
        main()
