"""Outbox benchmark: how fast the engine drains confirmation mail, against bare smtplib.

    .venv/bin/python bench/outbox.py [--count 2000] [--rounds 3] [--json] [--profile]

Engine: N pending members, one CONFIRM outbox row each, drained with
mailer.worker.runner.run_tick_for_app (claim, load, build each message at send time,
send over one reused connection, mark sent) into a local aiosmtpd sink.
Baseline: the same kind of N messages built beforehand with the same builder and
the same builder (outside the timing), then sent by a bare smtplib loop over one
connection to the same sink. Both run in every round, alternating which goes
first; the medians are reported. The sink must get exactly N messages, one per
expected recipient, every time, or the run fails."""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import platform
import pstats
import smtplib
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CountingSink,
    dispose,
    expect_delivered,
    make_app,
    median,
    migrated_sqlite,
    rate,
)
from sqlalchemy import delete, func, insert, select

from mailer.clock import FrozenClock
from mailer.extensions import db
from mailer.mail.outbox import enqueue_mail
from mailer.mail.transactional import TransactionalMail
from mailer.models import MailKind, Member, MemberStatus, OutboxMessage
from mailer.settings import settings_of
from mailer.worker.runner import run_tick_for_app

TARGET_RATIO = 0.7
WARMUP_COUNT = 20


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="messages per run (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="engine/baseline pairs; medians reported (default 3)")
    parser.add_argument("--batch-size", type=int, default=None, help="MAILER_BATCH_SIZE (default: the app's, 100)")
    parser.add_argument(
        "--sink",
        choices=("process", "thread"),
        default="process",
        help="SMTP sink in its own process (default, like a real server) or in a thread of this one",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument(
        "--profile", action="store_true", help="after the rounds, drain N once more under cProfile and print the top"
    )
    parser.add_argument("--profile-sort", default="cumulative", help="pstats sort key (default cumulative)")
    parser.add_argument("--profile-lines", type=int, default=30, help="rows of the profile to print (default 30)")
    parser.add_argument(
        "--min-ratio", type=float, default=None, help="exit 1 if engine/baseline is below this (default: report only)"
    )
    args = parser.parse_args(argv)
    if args.count < 1 or args.rounds < 1:
        parser.error("--count and --rounds must be at least 1")
    return args


# --- the data ----------------------------------------------------------------


def seed(app: Any, count: int, clock: FrozenClock, tag: str) -> list[tuple[str, str, str]]:
    """N pending members with one CONFIRM outbox row each; returns (link key, email, name) per member."""
    now = clock.now()
    rows = []
    for i in range(count):
        email = f"parent.{tag}.{i}@example.org"
        # Every tenth name is not ASCII, so the To header's encoded-word path is in the mix too.
        name = f"Zoë Parent {i}" if i % 10 == 0 else f"Parent {i}"
        rows.append(
            {
                "email": email,
                "email_key": email.lower(),
                "name": name,
                "status": MemberStatus.PENDING,
                "created_at": now,
                "updated_at": now,
            }
        )
    with app.app_context():
        session = db.session
        session.execute(insert(Member), rows)
        members = session.execute(
            select(Member.id, Member.link_key, Member.email, Member.name)
            .where(Member.email.like(f"parent.{tag}.%")).order_by(Member.id)
        ).all()
        for member_id, _, _, _ in members:
            enqueue_mail(session, MailKind.CONFIRM, member_id=member_id, clock=clock)
        session.commit()
        session.remove()
    if len(members) != count:
        raise SystemExit(f"seeding made {len(members)} members, expected {count}")
    return [(link_key, email, name) for _, link_key, email, name in members]


def clear(app: Any) -> None:
    """Untimed: remove the round's rows so every round starts from the same empty tables."""
    with app.app_context():
        db.session.execute(delete(OutboxMessage))
        db.session.execute(delete(Member))
        db.session.commit()
        db.session.remove()


def outbox_states(app: Any) -> dict[str, int]:
    with app.app_context():
        counts = db.session.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)).all()
        db.session.remove()
    return {str(state.value): n for state, n in counts}


# --- the two contestants -----------------------------------------------------


@dataclass
class Timing:
    wall: float  # seconds
    cpu: float  # seconds of this process's CPU (includes the sink's when it is a thread)


def timed(work: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def drain_with_engine(app: Any, expected: int) -> int:
    """run_tick_for_app until the outbox is empty; returns the ticks it took."""
    sent = ticks = 0
    while sent < expected:
        summary = run_tick_for_app(app)
        ticks += 1
        o = summary.outbox
        if o.failed or o.retrying or o.dropped or o.server_unavailable:
            raise SystemExit(f"engine: tick {ticks} did not send cleanly: {summary.describe()}")
        if o.sent == 0:
            break
        sent += o.sent
    if sent != expected:
        raise SystemExit(f"engine: sent {sent} message(s), expected {expected}; outbox now {outbox_states(app)}")
    return ticks


def prebuild(app: Any, clock: FrozenClock, members: list[tuple[str, str, str]]) -> tuple[str, list[tuple[str, bytes]]]:
    """Untimed: the same CONFIRM messages the engine would build, as wire bytes."""
    with app.app_context():
        mail = TransactionalMail.from_settings(app.jinja_env, settings_of(app), clock=clock)  # as the worker builds it
        messages = [
            (
                email,
                mail.build(
                    MailKind.CONFIRM,
                    to_address=email,
                    to_name=name,
                    link_key=link_key,
                    token_version=1,
                    now=clock.now(),
                ),
            )
            for link_key, email, name in members
        ]
    return settings_of(app).mail_settings.from_address, messages


def send_with_smtplib(sink: CountingSink, envelope_from: str, messages: list[tuple[str, bytes]]) -> None:
    """A bare loop: one connection, sendmail per message, QUIT."""
    smtp = smtplib.SMTP(sink.host, sink.port, timeout=30)
    try:
        for recipient, raw in messages:
            smtp.sendmail(envelope_from, [recipient], raw)
    finally:
        smtp.quit()


# --- the run -----------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    clock = FrozenClock()
    timings: dict[str, list[Timing]] = {"engine": [], "baseline": []}
    rounds: list[dict[str, Any]] = []
    octets: list[float] = []
    ticks: list[int] = []
    profile_text = None
    overrides: dict[str, Any] = {}
    if args.batch_size:
        overrides["MAILER_BATCH_SIZE"] = args.batch_size

    with (
        tempfile.TemporaryDirectory(prefix="mailer-bench-") as tmp,
        CountingSink(in_process=args.sink == "thread") as sink,
    ):
        database = migrated_sqlite(Path(tmp), "outbox.db")
        app = make_app(f"sqlite:///{database}", sink, **overrides)
        app.extensions["mailer.clock"] = clock
        batch_size = settings_of(app).batch_size
        try:

            def engine_pass(tag: str, count: int) -> Timing:
                members = seed(app, count, clock, tag)
                sink.take()
                took: list[int] = []
                timing = timed(lambda: took.append(drain_with_engine(app, count)))
                tally = sink.take()
                expect_delivered(tally, [email for _, email, _ in members], f"engine run {tag}")
                octets.append(tally.octets / max(1, tally.messages))
                ticks.extend(took)
                clear(app)
                return timing

            def baseline_pass(tag: str, count: int) -> Timing:
                members = seed(app, count, clock, tag)  # the same kind of members; their rows are not used
                envelope_from, messages = prebuild(app, clock, members)
                clear(app)
                sink.take()
                timing = timed(lambda: send_with_smtplib(sink, envelope_from, messages))
                expect_delivered(sink.take(), [email for _, email, _ in members], f"baseline run {tag}")
                return timing

            # Warm up both paths (imports, Jinja compilation, first connections) outside the figures.
            engine_pass("warm-e", WARMUP_COUNT)
            baseline_pass("warm-b", WARMUP_COUNT)
            ticks.clear()

            for i in range(args.rounds):
                order = ("engine", "baseline") if i % 2 == 0 else ("baseline", "engine")
                this: dict[str, Timing] = {}
                for which in order:
                    this[which] = (engine_pass if which == "engine" else baseline_pass)(f"{which[0]}{i}", args.count)
                    timings[which].append(this[which])
                e, b = this["engine"], this["baseline"]
                rounds.append(
                    {
                        "round": i + 1,
                        "first": order[0],
                        "engine_seconds": round(e.wall, 4),
                        "baseline_seconds": round(b.wall, 4),
                        "engine_rate": round(rate(args.count, e.wall), 1),
                        "baseline_rate": round(rate(args.count, b.wall), 1),
                        "engine_cpu_seconds": round(e.cpu, 4),
                        "baseline_cpu_seconds": round(b.cpu, 4),
                    }
                )
                if not args.json:
                    r = rounds[-1]
                    print(
                        f"round {i + 1}: engine {r['engine_rate']:.0f} msg/s ({e.wall:.2f} s, cpu {e.cpu:.2f} s), "
                        f"bare smtplib {r['baseline_rate']:.0f} msg/s ({b.wall:.2f} s, cpu {b.cpu:.2f} s)",
                        flush=True,
                    )

            if args.profile:
                members = seed(app, args.count, clock, "prof")
                sink.take()
                profiler = cProfile.Profile()
                profiler.runcall(drain_with_engine, app, args.count)
                expect_delivered(sink.take(), [email for _, email, _ in members], "profiled engine run")
                clear(app)
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats(args.profile_sort).print_stats(args.profile_lines)
                profile_text = out.getvalue()
        finally:
            dispose(app)

    engine = median([rate(args.count, t.wall) for t in timings["engine"]])
    baseline = median([rate(args.count, t.wall) for t in timings["baseline"]])
    engine_cpu = median([t.cpu for t in timings["engine"]]) / args.count * 1e6
    baseline_cpu = median([t.cpu for t in timings["baseline"]]) / args.count * 1e6
    result: dict[str, Any] = {
        "benchmark": "outbox",
        "count": args.count,
        "rounds": args.rounds,
        "batch_size": batch_size,
        "database": "sqlite",
        "sink": args.sink,
        "engine_rate": round(engine, 1),
        "baseline_rate": round(baseline, 1),
        "ratio": round(engine / baseline, 3) if baseline else None,
        "target_ratio": TARGET_RATIO,
        "engine_cpu_us_per_message": round(engine_cpu, 1),
        "baseline_cpu_us_per_message": round(baseline_cpu, 1),
        "engine_rates": [round(rate(args.count, t.wall), 1) for t in timings["engine"]],
        "baseline_rates": [round(rate(args.count, t.wall), 1) for t in timings["baseline"]],
        "per_round": rounds,
        "ticks_per_drain": median([float(t) for t in ticks]),
        "message_octets": round(median(octets)),
        "python": platform.python_version(),
    }
    if profile_text is not None:
        result["profile"] = profile_text
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    ratio = result["ratio"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        if "profile" in result:
            print(result["profile"])
        verdict = "meets" if ratio is not None and ratio >= TARGET_RATIO else "BELOW"
        print(
            f"cpu per message: engine {result['engine_cpu_us_per_message']:.0f} us, "
            f"bare smtplib {result['baseline_cpu_us_per_message']:.0f} us; "
            f"message {result['message_octets']} octets; sink in a {args.sink}; "
            f"{verdict} the {TARGET_RATIO} target"
        )
        print(
            f"outbox: engine {result['engine_rate']:.0f} msg/s, bare smtplib {result['baseline_rate']:.0f} msg/s, "
            f"ratio {ratio:.2f} (N={args.count}, median of {args.rounds})"
        )
    if args.min_ratio is not None and (ratio is None or ratio < args.min_ratio):
        print(f"ratio {ratio} is below --min-ratio {args.min_ratio}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
