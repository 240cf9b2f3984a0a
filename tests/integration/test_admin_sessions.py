"""Admin sessions and log-in under attack (issue 15, items 3 and 5): log-out ends the session on the
server, so a copied cookie stops working; idle sessions end; wrong passwords lock out only the
address they came from, so an attacker elsewhere cannot lock the real admin out."""

from __future__ import annotations

from typing import Any

from mailer.admins.accounts import create_admin
from mailer.extensions import db
from support.factories import ADMIN_EMAIL, ADMIN_PASSWORD, admin_post, logged_in_admin
from support.web import csrf_token

DASHBOARD = "/admin/"


def session_cookie(client: Any) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None, "the client has no session cookie"
    return cookie.value


def replay(app: Any, cookie: str) -> Any:
    """A second browser (an attacker's) that sends a copied session cookie and nothing else of its own."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other.get(DASHBOARD)


def sent_to_login(response: Any) -> bool:
    return response.status_code == 302 and "/admin/login" in response.headers["Location"]


def log_in(client: Any, *, password: str = ADMIN_PASSWORD, email: str = ADMIN_EMAIL, ip: str = "127.0.0.1") -> int:
    """One POST of the log-in form from `ip` (REMOTE_ADDR, as the WSGI server sets it); returns the status."""
    environ = {"REMOTE_ADDR": ip}
    token = csrf_token(client.get("/admin/login", environ_base=environ).get_data(as_text=True))
    response = client.post("/admin/login", environ_base=environ,
                           data={"csrf_token": token, "email": email, "password": password})
    return response.status_code


# --- item 3: sessions end on the server -----------------------------------------------------------


def test_a_cookie_copied_before_log_out_no_longer_logs_in(app, clock):
    """Issue 15 (3): log-out ends the session server-side; the same cookie replayed afterwards gets the login page."""
    admin = logged_in_admin(app, clock)
    copied = session_cookie(admin)
    assert replay(app, copied).status_code == 200, "before log-out the copy works (so the test means something)"
    assert admin_post(admin, DASHBOARD, "/admin/logout").status_code == 303
    assert sent_to_login(replay(app, copied))
    assert sent_to_login(admin.get(DASHBOARD))


def test_a_password_reset_ends_existing_sessions(app, clock):
    """Issue 15 (3): resetting an admin's password (create-admin on an existing address) logs out every session."""
    admin = logged_in_admin(app, clock)
    assert admin.get(DASHBOARD).status_code == 200
    with app.app_context():
        create_admin(db.session, ADMIN_EMAIL, "a completely new passphrase", clock=clock)
        db.session.commit()
    assert sent_to_login(admin.get(DASHBOARD))
    assert log_in(admin, password="a completely new passphrase") == 303
    assert admin.get(DASHBOARD).status_code == 200


def test_an_idle_session_ends_after_eight_hours_by_default(app, clock):
    """Issue 15 (3): MAILER_ADMIN_IDLE_MINUTES defaults to 480; past it, the admin logs in again."""
    admin = logged_in_admin(app, clock)
    clock.advance(minutes=479)
    assert admin.get(DASHBOARD).status_code == 200
    clock.advance(minutes=481)
    assert sent_to_login(admin.get(DASHBOARD))
    assert log_in(admin) == 303
    assert admin.get(DASHBOARD).status_code == 200


def test_activity_keeps_a_session_alive_but_not_an_old_copy_of_its_cookie(app, clock):
    """Issue 15 (3): each request restarts the idle time; a cookie copied early and left unused expires on its own."""
    admin = logged_in_admin(app, clock)
    copied = session_cookie(admin)
    for _ in range(3):
        clock.advance(hours=7)
        assert admin.get(DASHBOARD).status_code == 200
    assert sent_to_login(replay(app, copied)), "21 hours after it was copied, the copy has been idle too long"


def test_the_idle_limit_is_a_setting(make_app, clock):
    """Issue 15 (3): MAILER_ADMIN_IDLE_MINUTES sets the idle limit."""
    app = make_app(MAILER_ADMIN_IDLE_MINUTES=30)
    admin = logged_in_admin(app, clock)
    clock.advance(minutes=29)
    assert admin.get(DASHBOARD).status_code == 200
    clock.advance(minutes=31)
    assert sent_to_login(admin.get(DASHBOARD))


# --- item 5: lock-out per account and address -----------------------------------------------------


def test_an_attacker_elsewhere_cannot_lock_the_admin_out(make_app, clock):
    """Issue 15 (5): wrong passwords count per account and IP address: the attacker's address gets 429 after
    five (even with the right password), while the admin at their own address still logs in."""
    app = make_app(RATELIMIT_ENABLED=True)
    with app.app_context():
        create_admin(db.session, ADMIN_EMAIL, ADMIN_PASSWORD, clock=clock)
        db.session.commit()
    attacker = app.test_client()
    statuses = [log_in(attacker, password=f"guess {i}", ip="203.0.113.66") for i in range(8)]
    assert statuses == [400] * 5 + [429] * 3
    assert log_in(attacker, ip="203.0.113.66") == 429, "locked out at that address, right password or not"

    admin = app.test_client()
    assert log_in(admin, ip="198.51.100.20") == 303
    assert admin.get(DASHBOARD, environ_base={"REMOTE_ADDR": "198.51.100.20"}).status_code == 200

    clock.advance(minutes=16)  # the 15-minute window has ended (the app's clock drives the counters too)
    assert log_in(attacker, password="guess 9", ip="203.0.113.66") == 400


def test_a_successful_log_in_is_not_a_failure(make_app, clock):
    """Issue 15 (5): only wrong passwords count towards the lock-out; an admin logging in often is never locked out."""
    app = make_app(RATELIMIT_ENABLED=True, MAILER_LOGIN_RATE_LIMIT_ACCOUNT="2 per 15 minutes")
    with app.app_context():
        create_admin(db.session, ADMIN_EMAIL, ADMIN_PASSWORD, clock=clock)
        db.session.commit()
    client = app.test_client()
    assert [log_in(client) for _ in range(4)] == [303] * 4
    assert [log_in(client, password="wrong"), log_in(client, password="wrong"), log_in(client)] == [400, 400, 429]


def test_one_address_trying_many_accounts_meets_the_per_ip_limit(make_app, clock):
    """Issue 15 (5): besides the per-account-and-address count, every log-in POST from one address counts
    towards MAILER_LOGIN_RATE_LIMIT_IP, so spreading guesses over many accounts does not help."""
    app = make_app(RATELIMIT_ENABLED=True, MAILER_LOGIN_RATE_LIMIT_IP="6 per 10 minutes")
    client = app.test_client()
    statuses = [log_in(client, email=f"guess{i}@forum.example", password="wrong", ip="192.0.2.9") for i in range(8)]
    assert statuses == [400] * 6 + [429] * 2
    assert log_in(client, email="guess0@forum.example", password="wrong", ip="192.0.2.10") == 400
