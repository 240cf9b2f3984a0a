"""APScheduler wiring only (P2): job ids, triggers, and an app context around engine calls.

Runs in its own process (`flask --app wsgi worker`), never inside the web app."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from .extensions import db
from .housekeeping import Retention, purge
from .runner import run_tick_for_app
from .transaction import transaction
from .worker_lock import single_worker

log = logging.getLogger(__name__)

TICK_JOB_ID = "tick"
HOUSEKEEPING_JOB_ID = "housekeeping"


def tick_job(app: Flask) -> None:
    run_tick_for_app(app)


def housekeeping_job(app: Flask) -> None:
    with app.app_context():
        try:
            with transaction(db.session):
                counts = purge(
                    db.session, clock=app.extensions["mailer.clock"], retention=Retention.from_config(app.config)
                )
            log.info("housekeeping: %s", counts.describe())
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
    scheduler.add_job(housekeeping_job, "cron", args=[app], id=HOUSEKEEPING_JOB_ID, hour=3, minute=17)
    return scheduler


def run_worker(app: Flask, *, wait_for_lock: bool = True) -> None:
    """Block until SIGTERM or Ctrl-C, then let a running tick finish and return.

    On SQLite only one worker may run: a second one waits for the first (or refuses)."""
    with single_worker(app.config["SQLALCHEMY_DATABASE_URI"], wait=wait_for_lock):
        _run_scheduler(app)


def _run_scheduler(app: Flask) -> None:
    scheduler = build_scheduler(app)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("worker: signal %d received, stopping after the current tick", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("worker: started, tick every %ss", app.config["MAILER_TICK_SECONDS"])
    scheduler.start()
    log.info("worker: stopped")
