"""APScheduler wiring only (P2): job ids, triggers, and an app context around engine calls.

Runs in its own process (`flask --app wsgi worker`), never inside the web app."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from .bounces import purge_bounce_messages
from .extensions import db
from .heartbeat import purge_heartbeats, record_tick, worker_id_for
from .housekeeping import Retention, purge, remove_old_import_files
from .member_csv import import_dir
from .logconfig import set_process_fields
from .runner import process_bounces_for_app, run_tick_for_app
from .transaction import transaction
from .worker_lock import single_worker, sqlite_path

log = logging.getLogger(__name__)

TICK_JOB_ID = "tick"
HOUSEKEEPING_JOB_ID = "housekeeping"
BOUNCES_JOB_ID = "bounces"


HEARTBEAT_EVERY = timedelta(seconds=10)  # during a long send, between batches
HEARTBEAT_RETENTION = timedelta(days=7)


def tick_job(app: Flask) -> None:
    heartbeat = Heartbeat(app)
    run_tick_for_app(app, on_batch=lambda _summary: heartbeat.beat(during_tick=True))
    heartbeat.beat()


class Heartbeat:
    """This worker's row in worker_heartbeat, written in its own transaction (for /healthz).

    After every tick, and between batches of a long send so a monitor does not mistake
    a big announcement for a dead worker."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.worker_id = worker_id_for(app.config)
        self._last_at: datetime | None = None

    def beat(self, *, during_tick: bool = False) -> None:
        now = self.app.extensions["mailer.clock"].now()
        if during_tick and self._last_at is not None and now - self._last_at < HEARTBEAT_EVERY:
            return
        try:
            with self.app.app_context(), db.engine.begin() as connection:
                record_tick(connection, self.worker_id, now=now)
        except SQLAlchemyError as exc:
            log.warning("worker: could not record the heartbeat: %s", type(exc).__name__)
            return
        self._last_at = now


def bounces_job(app: Flask) -> None:
    """Read bounce messages stored by the bounce server (issue 8); logs only when there was work."""
    summary = process_bounces_for_app(app)
    if summary.busy:
        log.info("bounces: %d processed, %d counted, %d complaints, %d unmatched, %d errors", summary.processed,
                 summary.counted, summary.complaints, summary.unmatched, summary.errors)


def housekeeping_job(app: Flask) -> None:
    with app.app_context():
        try:
            with transaction(db.session):
                counts = purge(
                    db.session, clock=app.extensions["mailer.clock"], retention=Retention.from_config(app.config)
                )
                purge_heartbeats(db.session, older_than=app.extensions["mailer.clock"].now() - HEARTBEAT_RETENTION)
                bounce_messages = purge_bounce_messages(
                    db.session,
                    older_than=app.extensions["mailer.clock"].now()
                    - timedelta(days=float(app.config["MAILER_BOUNCE_RETENTION_DAYS"])),
                )
            import_files = remove_old_import_files(
                import_dir(app.config["MAILER_IMPORT_DIR"], app.instance_path), clock=app.extensions["mailer.clock"]
            )
            log.info("housekeeping: %s; %d old bounce message(s); %d old import file(s)", counts.describe(),
                     bounce_messages, import_files)
        finally:
            db.session.remove()


def build_scheduler(app: Flask) -> BlockingScheduler:
    scheduler = BlockingScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
    )
    scheduler.add_job(
        tick_job,
        "interval",
        args=[app],
        id=TICK_JOB_ID,
        seconds=float(app.config["MAILER_TICK_SECONDS"]),
        next_run_time=app.extensions["mailer.clock"].now(),
    )
    scheduler.add_job(
        bounces_job, "interval", args=[app], id=BOUNCES_JOB_ID, seconds=float(app.config["MAILER_TICK_SECONDS"]) * 6,
    )
    scheduler.add_job(housekeeping_job, "cron", args=[app], id=HOUSEKEEPING_JOB_ID, hour=3, minute=17)
    return scheduler


def run_worker(app: Flask, *, wait_for_lock: bool = True) -> None:
    """Block until SIGTERM or Ctrl-C, then let a running tick finish and return.

    On SQLite only one worker may run: a second one waits for the first (or refuses)."""
    set_process_fields(worker=worker_id_for(app.config))
    with single_worker(app.config["SQLALCHEMY_DATABASE_URI"], wait=wait_for_lock), _extra_senders(app):
        _run_scheduler(app)


@contextmanager
def _extra_senders(app: Flask) -> Iterator[None]:
    """MAILER_SMTP_CONCURRENCY > 1: that many sending processes, each with its own SMTP connection,
    sharing the work through their claims. PostgreSQL only: SQLite has one worker (S7).

    Processes, not threads: building messages is Python work that threads would serialise."""
    wanted = int(app.config.get("MAILER_SMTP_CONCURRENCY") or 1)
    if wanted <= 1:
        yield
        return
    if sqlite_path(app.config["SQLALCHEMY_DATABASE_URI"]) is not None:
        log.warning("worker: MAILER_SMTP_CONCURRENCY=%d ignored: SQLite supports one sending process", wanted)
        yield
        return
    base_id = worker_id_for(app.config)
    limit = int(app.config.get("MAILER_RATE_LIMIT_PER_MINUTE") or 0)
    share = max(1, limit // wanted) if limit else 0  # the processes together stay within the limit
    app.config["MAILER_RATE_LIMIT_PER_MINUTE"] = share
    children = []
    for number in range(2, wanted + 1):
        env = {
            **os.environ,
            "FLASK_MAILER_SMTP_CONCURRENCY": "1",
            "FLASK_MAILER_WORKER_ID": f"{base_id}/{number}",
            "FLASK_MAILER_RATE_LIMIT_PER_MINUTE": str(share),
        }
        children.append(subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], env=env))
    log.info("worker: started %d more sending process(es)", len(children))
    try:
        yield
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()


def _run_scheduler(app: Flask) -> None:
    scheduler = build_scheduler(app)
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    # SIGTERM/SIGINT wait for a watcher thread instead of interrupting the main thread: a handler
    # that runs while the scheduler holds one of its locks can deadlock, and one that runs before
    # the scheduler has started cannot stop it (both seen as a worker that ignored SIGTERM).
    # Blocked before any thread starts, so every thread inherits the mask and sigwait gets them.
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    started = threading.Event()
    scheduler.add_listener(lambda _event: started.set(), EVENT_SCHEDULER_STARTED)

    def watch_signals() -> None:
        signum = signal.sigwait(stop_signals)
        log.info("worker: signal %d received, stopping after the current tick", signum)
        started.wait()
        scheduler.shutdown(wait=False)

    threading.Thread(target=watch_signals, name="worker-signals", daemon=True).start()
    try:
        log.info("worker: started, tick every %ss", app.config["MAILER_TICK_SECONDS"])
        scheduler.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
    log.info("worker: stopped")
