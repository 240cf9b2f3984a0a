"""Rate-limit counters in the database (issue 15, item 2): log-in and join limits hold across web
processes and restarts. The counting itself (mailer/rate_limits.py), Flask-Limiter's `database://`
storage, and real gunicorn workers sharing one count."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from conftest import base_config
from sqlalchemy import func, select

from mailer import create_app
from mailer.admins.accounts import create_admin
from mailer.clock import SystemClock
from mailer.extensions import db
from mailer.models import RateLimitCounter
from mailer.rate_limits import find_count, find_window_end, increment_counter, stored_key
from mailer.worker.housekeeping import Retention, purge
from support.factories import ADMIN_EMAIL, ADMIN_PASSWORD
from support.gunicorn import Browser, Gunicorn
from support.web import csrf_token, join

MINUTE = timedelta(minutes=1)


def counters(app: Any) -> dict[str, int]:
    with app.app_context():
        return {row.key: row.count for row in db.session.scalars(select(RateLimitCounter))}


# --- the counting ---------------------------------------------------------------------------------


def test_counts_within_a_window_and_starts_again_after_it(app, clock):
    """A key counts up within its window; the first hit after the window ends starts a new one at 1."""
    with app.app_context(), db.engine.begin() as connection:
        now = clock.now()
        assert [increment_counter(connection, "k", now=now, expiry=MINUTE) for _ in range(3)] == [1, 2, 3]
        assert increment_counter(connection, "k", now=now, expiry=MINUTE, amount=2) == 5
        assert find_count(connection, "k", now=now + timedelta(seconds=59)) == 5
        assert find_window_end(connection, "k", now=now) == now + MINUTE
        later = now + timedelta(seconds=60)
        assert find_count(connection, "k", now=later) == 0
        assert increment_counter(connection, "k", now=later, expiry=MINUTE) == 1
        assert find_window_end(connection, "k", now=later) == later + MINUTE
        assert find_count(connection, "other", now=now) == 0


def test_increments_from_many_connections_at_once_are_all_counted(app, clock):
    """The increment is one atomic statement: 8 threads x 25 hits on their own connections give
    every count from 1 to 200 exactly once (a read-then-write would lose some)."""
    seen: list[int] = []
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def hammer() -> None:
        try:
            with app.app_context():
                start.wait()
                for _ in range(25):
                    with db.engine.begin() as connection:
                        seen.append(increment_counter(connection, "busy", now=clock.now(), expiry=MINUTE))
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert sorted(seen) == list(range(1, 201))


def test_a_key_too_long_for_the_column_is_kept_as_its_hash(app, clock):
    """Keys longer than the column are stored as a hash: still one row per key, never cut short into another's."""
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"
    with app.app_context(), db.engine.begin() as connection:
        assert increment_counter(connection, long_a, now=clock.now(), expiry=MINUTE) == 1
        assert increment_counter(connection, long_b, now=clock.now(), expiry=MINUTE) == 1
        assert increment_counter(connection, long_a, now=clock.now(), expiry=MINUTE) == 2
    assert counters(app) == {stored_key(long_a): 2, stored_key(long_b): 1}
    assert all(len(key) <= 255 for key in counters(app))


def test_housekeeping_deletes_windows_that_have_ended(app, clock):
    """The daily housekeeping (and `flask purge`) removes ended windows and keeps running ones."""
    with app.app_context():
        with db.engine.begin() as connection:
            increment_counter(connection, "old", now=clock.now(), expiry=MINUTE)
            increment_counter(connection, "current", now=clock.now(), expiry=timedelta(hours=1))
        clock.advance(minutes=2)
        counts = purge(db.session, clock=clock, retention=Retention())
        db.session.commit()
        assert counts.rate_limit_windows == 1
        assert "1 ended rate-limit window(s)" in counts.describe()
    assert counters(app) == {"current": 1}


# --- Flask-Limiter's storage ----------------------------------------------------------------------


def test_the_database_is_the_default_store_and_names_no_address(make_app, clock):
    """RATELIMIT_STORAGE_URI defaults to database://: join limits land in the table, keyed by IP address and
    a keyed hash of the address typed, never the address itself."""
    app = make_app(RATELIMIT_ENABLED=True, MAILER_JOIN_RATE_LIMIT_PER_ADDRESS="2 per hour")
    assert app.config["RATELIMIT_STORAGE_URI"] == "database://"
    client = app.test_client()
    statuses = [join(client, email="Target@Example.org").status_code for _ in range(3)]
    assert statuses == [303, 303, 429]
    keys = counters(app)
    assert keys and not any("example.org" in key.lower() for key in keys), keys
    assert any("127.0.0.1" in key for key in keys), keys


def test_two_apps_on_one_database_share_the_count(database_uri, smtp, clock):
    """Two app objects (as two web processes would be) on one database: wrong passwords spread over
    both get a 429 after exactly the limit, where memory:// would let each process count its own."""
    apps = [create_app({**base_config(database_uri, smtp), "RATELIMIT_ENABLED": True}) for _ in range(2)]
    try:
        for app in apps:
            app.extensions["mailer.clock"] = clock
        with apps[0].app_context():
            create_admin(db.session, ADMIN_EMAIL, ADMIN_PASSWORD, clock=clock)
            db.session.commit()
        statuses = []
        for i in range(7):
            client = apps[i % 2].test_client()
            token = csrf_token(client.get("/admin/login").get_data(as_text=True))
            statuses.append(client.post("/admin/login", data={
                "csrf_token": token, "email": ADMIN_EMAIL, "password": f"guess {i}"}).status_code)
        assert statuses == [400] * 5 + [429] * 2
    finally:
        for app in apps:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


def test_memory_storage_can_still_be_chosen(make_app, clock):
    """RATELIMIT_STORAGE_URI=memory:// still works (per process, as documented) and writes nothing to the table."""
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://", MAILER_JOIN_RATE_LIMIT="2 per hour")
    client = app.test_client()
    statuses = [join(client, email=f"m{i}@example.org").status_code for i in range(3)]
    assert statuses == [303, 303, 429]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RateLimitCounter)) == 0


# --- real processes -------------------------------------------------------------------------------


def test_two_gunicorn_workers_share_the_log_in_limit_and_a_restart_keeps_it(database_uri, tmp_path):
    """Issue 15 (2): under gunicorn with two worker processes, wrong admin passwords spread over both get a
    429 after exactly the limit (5), not 5 per process; after gunicorn is stopped and started again the
    count is still there, so the next guess is refused at once."""
    setup = create_app(base_config(database_uri))
    with setup.app_context():
        create_admin(db.session, ADMIN_EMAIL, ADMIN_PASSWORD, clock=SystemClock())
        db.session.commit()
        db.engine.dispose()
    settings = {"SQLALCHEMY_DATABASE_URI": database_uri, "SECRET_KEY": "test-only-secret-" + "x" * 32,
                "MAILER_PROXY_FIX_X_FOR": 1, "MAILER_LOG_LEVEL": "WARNING"}

    def guess(server: Gunicorn, ip: str, password: str) -> int:
        browser = Browser(server.port, {"X-Forwarded-For": ip})
        _, _, page = browser.request("GET", "/admin/login")
        status, _, _ = browser.request("POST", "/admin/login", {
            "csrf_token": csrf_token(page), "email": ADMIN_EMAIL, "password": password})
        return status

    def guess_elsewhere(server: Gunicorn, ip: str, password: str) -> int:
        with server.one_worker_held():
            return guess(server, ip, password)

    server = Gunicorn(tmp_path, workers=2, **settings)
    try:
        # Each round is one attacker address. Every other guess is made while one worker is held busy,
        # so the guesses reach both workers; should a round still not reach both, another round
        # (from a new address) is made.
        for round_number in range(1, 6):
            ip = f"203.0.113.{round_number}"
            before = len(server.served())
            statuses = [(guess_elsewhere if i % 2 else guess)(server, ip, f"guess {i}") for i in range(8)]
            assert statuses == [400] * 5 + [429] * 3, (ip, statuses)
            posts = [row for row in server.served()[before:] if row[1] == "POST"]
            if {pid for pid, *_ in posts[:6]} == server.worker_pids():
                break
        else:
            raise AssertionError(f"five rounds never reached both workers: {server.served()}")
        assert guess(server, ip, ADMIN_PASSWORD) == 429, "the right password from that address waits too"
    finally:
        assert server.stop() == 0, server.log()[-3000:]

    restarted = Gunicorn(tmp_path, workers=2, **settings)
    try:
        assert restarted.worker_pids().isdisjoint(server.worker_pids())
        assert guess(restarted, ip, "guess after restart") == 429
        assert guess(restarted, "198.51.100.20", ADMIN_PASSWORD) == 303, "the admin elsewhere logs in"
    finally:
        assert restarted.stop() == 0, restarted.log()[-3000:]
    assert "Traceback" not in server.log() + restarted.log()
