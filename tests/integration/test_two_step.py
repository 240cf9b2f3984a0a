"""Two-step login and server-side admin sessions (issue 19, items 3 and 5; V4): set-up with a real TOTP code
computed from the secret the page shows, log-in with a code and with a recovery code, no code or recovery code
working twice, an owner requiring it for everyone, the 7-day absolute session limit, ending other sessions,
and the server's reset-two-step command."""

from __future__ import annotations

import re
from typing import Any

import pyotp
from sqlalchemy import select

from mailer.admins.accounts import create_admin
from mailer.extensions import db
from mailer.models import Admin, AdminRole, AdminSession, RecoveryCode
from support.factories import ADMIN_EMAIL, ADMIN_PASSWORD, admin_post, logged_in_admin
from support.web import csrf_token

DASHBOARD = "/admin/"
TWO_STEP = "/admin/account/two-step"
CODE_PAGE = "/admin/login/code"
SESSIONS = "/admin/account/sessions"
SENDER_EMAIL = "sender@forum.example"
SENDER_PASSWORD = "another long password"


def sent_to(response: Any, path: str) -> bool:
    return response.status_code in (302, 303) and response.headers["Location"].split("?")[0].endswith(path)


def password_step(client: Any, *, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> Any:
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    return client.post("/admin/login", data={"csrf_token": token, "email": email, "password": password})


def code_step(client: Any, code: str) -> Any:
    token = csrf_token(client.get(CODE_PAGE).get_data(as_text=True))
    return client.post(CODE_PAGE, data={"csrf_token": token, "code": code})


def log_out(client: Any) -> None:
    assert admin_post(client, DASHBOARD, "/admin/logout").status_code == 303


def turn_on_two_step(client: Any, clock: Any) -> tuple[pyotp.TOTP, list[str]]:
    """Set up two-step login through the page: read the secret shown as text, type the app's code."""
    page = client.get(TWO_STEP).get_data(as_text=True)
    match = re.search(r'id="two-step-secret" class="secret">([A-Z2-7 ]+)<', page)
    assert match, "the secret is shown as text"
    assert "<svg" in page, "and as a QR code, inline"
    totp = pyotp.TOTP(match.group(1).replace(" ", ""))
    response = client.post(TWO_STEP, data={"csrf_token": csrf_token(page), "code": totp.at(clock.now())})
    assert response.status_code == 200, response.get_data(as_text=True)[:1000]
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", response.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    return totp, codes


def add_sender(app: Any, clock: Any) -> None:
    with app.app_context():
        create_admin(db.session, SENDER_EMAIL, SENDER_PASSWORD, clock=clock, role=AdminRole.SENDER)
        db.session.commit()


def test_the_two_step_journey(app, clock):
    """Issue 19 (3): set-up with a code from the shown secret; afterwards the password alone does not log in;
    a code does; a recovery code does, once; recovery codes are stored hashed."""
    client = logged_in_admin(app, clock)
    totp, codes = turn_on_two_step(client, clock)
    with app.app_context():
        stored = db.session.scalars(select(RecoveryCode.code_hash)).all()
    assert len(stored) == 10 and not {c.replace("-", "") for c in codes} & set(stored)
    assert "Two-step login is on" in client.get(TWO_STEP).get_data(as_text=True)
    assert codes[0] not in client.get(TWO_STEP).get_data(as_text=True), "the codes are shown once only"
    log_out(client)

    assert sent_to(password_step(client), CODE_PAGE)
    assert sent_to(client.get(DASHBOARD), "/admin/login"), "the password step alone does not log in"
    clock.advance(seconds=30)  # the next time-step: the set-up code itself cannot be used again
    assert sent_to(code_step(client, totp.at(clock.now())), DASHBOARD)
    assert client.get(DASHBOARD).status_code == 200
    log_out(client)

    assert sent_to(password_step(client), CODE_PAGE)
    response = code_step(client, codes[3].upper())
    assert sent_to(response, DASHBOARD), response.get_data(as_text=True)[:1000]
    assert "You have 9 left" in client.get(DASHBOARD).get_data(as_text=True)
    log_out(client)

    assert sent_to(password_step(client), CODE_PAGE)
    refused = code_step(client, codes[3])
    assert refused.status_code == 400 and "That code is not right" in refused.get_data(as_text=True)
    assert sent_to(client.get(DASHBOARD), "/admin/login"), "a used recovery code is refused the second time"


def test_a_code_cannot_be_replayed_within_its_window(app, clock):
    """Issue 19 (3): a TOTP code that logged in once is refused for another log-in, though still within its
    time window; the next code works."""
    client = logged_in_admin(app, clock)
    totp, _codes = turn_on_two_step(client, clock)
    log_out(client)
    clock.advance(seconds=30)
    code = totp.at(clock.now())
    assert sent_to(password_step(client), CODE_PAGE)
    assert sent_to(code_step(client, code), DASHBOARD)
    log_out(client)

    clock.advance(seconds=10)
    thief = app.test_client()
    assert sent_to(password_step(thief), CODE_PAGE)
    assert code_step(thief, code).status_code == 400
    assert sent_to(thief.get(DASHBOARD), "/admin/login")
    clock.advance(seconds=30)
    assert sent_to(code_step(thief, totp.at(clock.now())), DASHBOARD)


def test_wrong_codes_are_rate_limited(make_app, clock):
    """Issue 19 (3): wrong codes count like wrong passwords (MAILER_LOGIN_RATE_LIMIT_ACCOUNT): then 429,
    even for the right code."""
    app = make_app(RATELIMIT_ENABLED=True, MAILER_LOGIN_RATE_LIMIT_ACCOUNT="3 per 15 minutes")
    client = logged_in_admin(app, clock)
    totp, codes = turn_on_two_step(client, clock)
    log_out(client)
    clock.advance(seconds=30)
    assert sent_to(password_step(client), CODE_PAGE)
    assert [code_step(client, "000000").status_code for _ in range(3)] == [400] * 3
    assert code_step(client, totp.at(clock.now())).status_code == 429
    assert code_step(client, codes[0]).status_code == 429


def test_the_code_page_without_a_password_sends_back_to_log_in(app, clock):
    """Issue 19 (3): the code page needs a right password from this browser in the last 10 minutes."""
    client = logged_in_admin(app, clock)
    turn_on_two_step(client, clock)
    log_out(client)
    assert sent_to(client.get(CODE_PAGE), "/admin/login")
    assert sent_to(password_step(client), CODE_PAGE)
    clock.advance(minutes=11)
    assert sent_to(client.get(CODE_PAGE), "/admin/login")


def test_required_for_everyone_sends_a_new_log_in_to_set_up(app, clock):
    """Issue 19 (3): an owner requires two-step login; an admin without it is sent to set it up at their next
    log-in before any other page, and gets on once it is on."""
    owner = logged_in_admin(app, clock)
    page = owner.get("/admin/account/security").get_data(as_text=True)
    refused = owner.post("/admin/account/security", data={"csrf_token": csrf_token(page), "require_two_step": "y"})
    assert refused.status_code == 400 and "for your own account first" in refused.get_data(as_text=True)
    turn_on_two_step(owner, clock)
    page = owner.get("/admin/account/security").get_data(as_text=True)
    assert owner.post("/admin/account/security", data={"csrf_token": csrf_token(page), "require_two_step": "y"}
                      ).status_code == 303

    add_sender(app, clock)
    sender = app.test_client()
    assert sent_to(password_step(sender, email=SENDER_EMAIL, password=SENDER_PASSWORD), DASHBOARD)
    for path in (DASHBOARD, "/admin/members", SESSIONS):
        assert sent_to(sender.get(path), TWO_STEP), path
    assert "requires two-step login for every admin" in sender.get(TWO_STEP).get_data(as_text=True)
    turn_on_two_step(sender, clock)
    assert sender.get(DASHBOARD).status_code == 200
    assert "cannot be turned off" in sender.get(TWO_STEP).get_data(as_text=True)
    # Only an owner sees or changes the policy.
    assert sender.get("/admin/account/security").status_code == 403


def test_a_session_ends_seven_days_after_log_in_however_busy(make_app, clock):
    """Issue 19 (5): sessions end absolutely 7 days after the log-in, even when used every few hours."""
    app = make_app(MAILER_ADMIN_IDLE_MINUTES=24 * 60)
    client = logged_in_admin(app, clock)
    for _ in range(6 * 4 + 3):  # 6 days 18 hours of use every 6 hours
        clock.advance(hours=6)
        assert client.get(DASHBOARD).status_code == 200
    clock.advance(hours=5, minutes=59)
    assert client.get(DASHBOARD).status_code == 200
    clock.advance(minutes=2)
    assert sent_to(client.get(DASHBOARD), "/admin/login")


def test_an_admin_ends_their_other_sessions(app, clock):
    """Issue 19 (5): the sessions page lists each log-in with its device; "log out of all other devices" ends
    the second browser's session, and this one goes on."""
    laptop = logged_in_admin(app, clock)
    phone = app.test_client()
    phone_agent = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 "
                   "Safari/604.1")
    token = csrf_token(phone.get("/admin/login").get_data(as_text=True))
    assert phone.post("/admin/login", headers={"User-Agent": phone_agent},
                      data={"csrf_token": token, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).status_code == 303
    page = laptop.get(SESSIONS).get_data(as_text=True)
    assert "Safari on iPhone" in page and "This device" in page
    assert admin_post(laptop, SESSIONS, "/admin/account/sessions/end-others").status_code == 303
    assert sent_to(phone.get(DASHBOARD), "/admin/login")
    assert laptop.get(DASHBOARD).status_code == 200
    assert "Safari on iPhone" not in laptop.get(SESSIONS).get_data(as_text=True)


def test_an_owner_ends_anyones_session_and_a_sender_only_their_own(app, clock):
    """Issue 19 (5): an owner ends another admin's session from the sessions page; a sender cannot end the
    owner's (403, nothing changed)."""
    owner = logged_in_admin(app, clock)
    add_sender(app, clock)
    sender = app.test_client()
    assert sent_to(password_step(sender, email=SENDER_EMAIL, password=SENDER_PASSWORD), DASHBOARD)
    with app.app_context():
        rows = {a.email: s.id for s, a in db.session.execute(
            select(AdminSession, Admin).join(Admin, Admin.id == AdminSession.admin_id))}
    assert SENDER_EMAIL in owner.get(SESSIONS).get_data(as_text=True)
    assert SENDER_EMAIL not in owner.get(SESSIONS).get_data(as_text=True).split("<h2>")[0]

    forbidden = admin_post(sender, SESSIONS, f"/admin/account/sessions/{rows[ADMIN_EMAIL]}/end")
    assert forbidden.status_code == 403
    assert owner.get(DASHBOARD).status_code == 200

    assert admin_post(owner, SESSIONS, f"/admin/account/sessions/{rows[SENDER_EMAIL]}/end").status_code == 303
    assert sent_to(sender.get(DASHBOARD), "/admin/login")


def test_a_role_change_or_removal_takes_effect_at_the_next_request(app, clock):
    """Issue 19 (5): the role is read from the database at each request; a removed admin's session ends."""
    owner = logged_in_admin(app, clock)
    add_sender(app, clock)
    sender = app.test_client()
    assert sent_to(password_step(sender, email=SENDER_EMAIL, password=SENDER_PASSWORD), DASHBOARD)
    assert "Other admins" not in sender.get(SESSIONS).get_data(as_text=True)
    with app.app_context():
        db.session.scalars(select(Admin).where(Admin.email == SENDER_EMAIL)).one().role = AdminRole.OWNER
        db.session.commit()
    assert "Other admins" in sender.get(SESSIONS).get_data(as_text=True)
    with app.app_context():
        admin = db.session.scalars(select(Admin).where(Admin.email == SENDER_EMAIL)).one()
        admin_id = admin.id
        db.session.delete(admin)
        db.session.commit()
        assert db.session.scalars(select(AdminSession).where(AdminSession.admin_id == admin_id)).all() == []
    assert sent_to(sender.get(DASHBOARD), "/admin/login")
    assert owner.get(DASHBOARD).status_code == 200


def test_reset_two_step_on_the_server(app, clock):
    """Issue 19 (3): `flask reset-two-step EMAIL` turns two-step login off for that admin, deletes their
    recovery codes, ends their sessions and says so; then the password alone logs in."""
    client = logged_in_admin(app, clock)
    turn_on_two_step(client, clock)
    result = app.test_cli_runner().invoke(args=["reset-two-step", ADMIN_EMAIL.upper()])
    assert result.exit_code == 0, result.output
    assert f"Two-step login is now off for {ADMIN_EMAIL}" in result.output
    assert "logged out everywhere (1 session ended)" in result.output
    assert sent_to(client.get(DASHBOARD), "/admin/login")
    with app.app_context():
        assert db.session.scalars(select(RecoveryCode)).all() == []
    assert sent_to(password_step(client), DASHBOARD)

    unknown = app.test_cli_runner().invoke(args=["reset-two-step", "nobody@forum.example"])
    assert unknown.exit_code != 0 and "no admin with that email address" in unknown.output


def test_turning_two_step_off_takes_a_current_code(app, clock):
    """Issue 19 (3): turning two-step login off needs a current code (a wrong one changes nothing); afterwards
    the password alone logs in again."""
    client = logged_in_admin(app, clock)
    totp, _codes = turn_on_two_step(client, clock)
    assert sent_to(admin_post(client, TWO_STEP, "/admin/account/two-step/off", {"code": "000000"}), TWO_STEP)
    assert "That code is not right" in client.get(TWO_STEP).get_data(as_text=True)
    assert "Two-step login is on" in client.get(TWO_STEP).get_data(as_text=True)
    clock.advance(seconds=30)
    response = admin_post(client, TWO_STEP, "/admin/account/two-step/off", {"code": totp.at(clock.now())})
    assert sent_to(response, TWO_STEP)
    assert "Set up two-step login" in client.get(TWO_STEP).get_data(as_text=True)
    log_out(client)
    assert sent_to(password_step(client), DASHBOARD)
