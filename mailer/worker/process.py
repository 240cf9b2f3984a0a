"""APScheduler wiring only (P2): job ids, triggers, and an app context around engine calls.

Runs in its own process (`flask --app wsgi worker`), never inside the web app."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from mailer.bounces.records import purge_bounce_messages
from mailer.extensions import db
from mailer.logs.setup import set_process_fields
from mailer.settings import MIN_HEARTBEAT_STALE_SECONDS, Settings, settings_of
from mailer.transaction import transaction
from mailer.worker.heartbeat import purge_heartbeats, record_tick
from mailer.worker.housekeeping import purge, remove_old_import_files, send_confirm_reminders
from mailer.worker.lock import single_worker, sqlite_path
from mailer.worker.runner import process_bounces_for_app, release_own_claims_for_app, run_tick_for_app

log = logging.getLogger(__name__)

TICK_JOB_ID = "tick"
HOUSEKEEPING_JOB_ID = "housekeeping"
BOUNCES_JOB_ID = "bounces"


HEARTBEAT_EVERY = timedelta(seconds=10)  # during a long send, between batches
# From the heartbeat thread: a quarter of the shortest time after which any worker, whatever its own
# tick interval, takes a heartbeat for stopped (Settings.heartbeat_stale_after), so workers configured
# with different ticks never take each other's claims while they run.
HEARTBEAT_THREAD_EVERY = timedelta(seconds=MIN_HEARTBEAT_STALE_SECONDS / 4)
HEARTBEAT_RETENTION = timedelta(days=7)


def tick_job(app: Flask, settings: Settings) -> None:
    heartbeat = Heartbeat(app, settings.worker_id)
    run_tick_for_app(app, settings=settings, on_batch=lambda _summary: heartbeat.beat(during_tick=True))
    heartbeat.beat()


class Heartbeat:
    """This worker's row in worker_heartbeat, written in its own transaction (for /healthz, and so
    other workers know its claims are held by a live worker: engine/claims.py).

    After every tick, between batches of a long send, and from a thread of its own while the worker
    runs (`beating`), so neither a big announcement nor a slow relay makes it look stopped."""

    def __init__(self, app: Flask, worker_id: str | None = None) -> None:
        self.app = app
        self.worker_id = worker_id or settings_of(app).worker_id
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


@contextmanager
def beating(app: Flask, settings: Settings) -> Iterator[None]:
    """Write this worker's heartbeat now and then every HEARTBEAT_THREAD_EVERY from a thread, whatever
    the ticks are doing, for as long as the block runs. kill -9 stops it with the rest of the process:
    the heartbeat ages and other workers take back the claims at their next tick."""
    heartbeat = Heartbeat(app, settings.worker_id)
    heartbeat.beat()
    stop = threading.Event()
    every = HEARTBEAT_THREAD_EVERY.total_seconds()

    def beat_until_stopped() -> None:
        while not stop.wait(every):
            heartbeat.beat()

    thread = threading.Thread(target=beat_until_stopped, name="worker-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + settings.smtp_timeout)


def bounces_job(app: Flask, settings: Settings) -> None:
    """Read bounce messages stored by the bounce server (issue 8); logs only when there was work."""
    summary = process_bounces_for_app(app, settings)
    if summary.busy:
        log.info("bounces: %d processed, %d counted, %d complaints, %d unmatched, %d errors", summary.processed,
                 summary.counted, summary.complaints, summary.unmatched, summary.errors)


def housekeeping_job(app: Flask, settings: Settings) -> None:
    clock = app.extensions["mailer.clock"]
    with app.app_context():
        try:
            session = db.session()
            with transaction(session):
                counts = purge(session, clock=clock, retention=settings.retention)
                reminders = 0 if settings.confirm_reminder is None else send_confirm_reminders(
                    session, clock=clock, after=settings.confirm_reminder, retention=settings.retention,
                    suppression_key=settings.suppression_key,
                )
                purge_heartbeats(session, older_than=clock.now() - HEARTBEAT_RETENTION)
                bounce_messages = purge_bounce_messages(session, older_than=clock.now() - settings.bounce_retention)
            import_files = remove_old_import_files(settings.import_dir, clock=clock)
            log.info("housekeeping: %s; %d old bounce message(s); %d old import file(s); %d reminder(s) to confirm",
                     counts.describe(), bounce_messages, import_files, reminders)
        finally:
            db.session.remove()


def build_scheduler(app: Flask, settings: Settings) -> BlockingScheduler:
    scheduler = BlockingScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
    )
    scheduler.add_job(
        tick_job,
        "interval",
        args=[app, settings],
        id=TICK_JOB_ID,
        seconds=settings.tick_seconds,
        next_run_time=app.extensions["mailer.clock"].now(),
    )
    scheduler.add_job(
        bounces_job, "interval", args=[app, settings], id=BOUNCES_JOB_ID, seconds=settings.tick_seconds * 6
    )
    scheduler.add_job(housekeeping_job, "cron", args=[app, settings], id=HOUSEKEEPING_JOB_ID, hour=3, minute=17)
    return scheduler


def run_worker(app: Flask, *, wait_for_lock: bool = True) -> None:
    """Block until SIGTERM or Ctrl-C, then let a running tick finish and return.

    On SQLite only one worker may run: a second one waits for the first (or refuses)."""
    settings = settings_of(app)
    own, *others = _sending_processes(settings)
    set_process_fields(worker=own.worker_id)
    with single_worker(settings.database_uri, wait=wait_for_lock), _extra_senders(others):
        # Claims under this worker's id are an earlier run's (a restart keeps the id when it is
        # configured, or a container's host name and pid 1): that run has stopped, so they go back now.
        release_own_claims_for_app(app, own)
        _run_scheduler(app, own)


def _sending_processes(settings: Settings) -> list[Settings]:
    """MAILER_SMTP_CONCURRENCY > 1: the settings of that many sending processes, this one's first.
    PostgreSQL only: SQLite has one worker (S7)."""
    if settings.smtp_concurrency > 1 and sqlite_path(settings.database_uri) is not None:
        log.warning("worker: MAILER_SMTP_CONCURRENCY=%d ignored: SQLite supports one sending process",
                    settings.smtp_concurrency)
        return [settings]
    return settings.sending_processes()


def run_sending_process(settings: Settings) -> None:
    """A sending process's whole life: an app on the Settings its worker handed it, and the worker loop.

    It reads no configuration of its own, so it sends with exactly what its worker was started with."""
    from mailer import create_app

    run_worker(create_app(settings=settings))


@contextmanager
def _extra_senders(others: list[Settings]) -> Iterator[None]:
    """One more sending process for each of `others`, each with its own SMTP connection, sharing
    the work through their claims; stopped (SIGTERM, then SIGKILL after a minute) when the block ends.

    Processes, not threads: building messages is Python work that threads would serialise. Started
    fresh ("spawn"), never forked from a process holding database connections and threads; each
    gets its Settings (they pickle) as its only argument."""
    if not others:
        yield
        return
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=run_sending_process, args=(settings,), name=settings.worker_id)
                for settings in others]
    for child in children:
        child.start()
    log.info("worker: started %d more sending process(es)", len(children))
    try:
        yield
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
        for child in children:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()
                child.join()


def _run_scheduler(app: Flask, settings: Settings) -> None:
    scheduler = build_scheduler(app, settings)
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
        log.info("worker: started, tick every %ss", settings.tick_seconds)
        with beating(app, settings):  # started with the signals blocked, like every other thread
            scheduler.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
    log.info("worker: stopped")
