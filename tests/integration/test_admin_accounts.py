"""Admin accounts from the web (V4, issue 19 part 1): invitations, removal, roles and the last owner, password
change and reset, email change. Every link travels through real email (the aiosmtpd sink) and the worker."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mailer.admins.accounts import create_admin
from mailer.extensions import db
from mailer.models import Admin, AdminRole
from mailer.worker.runner import run_tick_for_app
from support.factories import ADMIN_EMAIL, ADMIN_PASSWORD, admin_post, logged_in_admin
from support.mail import flat, link_to, parts
from support.web import csrf_token, path_of

DASHBOARD = "/admin/"
NEW_EMAIL = "new.volunteer@example.org"
GOOD_PASSWORD = "kettle orchard lantern pebble"


def log_in(app: Any, email: str, password: str) -> tuple[Any, int]:
    """A new browser that posts the log-in form; (client, status)."""
    client = app.test_client()
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    response = client.post("/admin/login", data={"csrf_token": token, "email": email, "password": password})
    return client, response.status_code


def sent_to_login(response: Any) -> bool:
    return response.status_code == 302 and "/admin/login" in response.headers["Location"]


def add_admin(app: Any, clock: Any, email: str, role: AdminRole, password: str = ADMIN_PASSWORD) -> int:
    with app.app_context():
        admin = create_admin(db.session, email, password, clock=clock, role=role)
        db.session.commit()
        return admin.id


def invite(owner: Any, email: str = NEW_EMAIL, role: str = "sender") -> Any:
    return admin_post(owner, "/admin/admins", "/admin/admins/invite", {"email": email, "role": role})


def mailed_link(app: Any, smtp: Any, path_part: str, to: str) -> str:
    """Run the worker once; the one new message to `to` holds the link to follow (its path)."""
    before = len(smtp.received)
    run_tick_for_app(app)
    received = smtp.wait_for(before + 1)[before:]
    (message,) = [r.message for r in received if r.rcpt_tos == [to]]
    return path_of(link_to(message, path_part))


def choose_password(client: Any, path: str, password: str) -> Any:
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    return client.post(path, data={"csrf_token": csrf_token(page.get_data(as_text=True)), "password": password})


def test_the_whole_invitation_journey_through_real_email(app, clock, smtp):
    """V4/issue 19: an owner invites by address and role; the mailed link lets the invitee choose a password (a
    common one refused), then log in with the role given; the used link is refused afterwards with a 410."""
    owner = logged_in_admin(app, clock)
    assert invite(owner).status_code == 303
    page = owner.get("/admin/admins").get_data(as_text=True)
    assert NEW_EMAIL in page and "Invitations not yet accepted" in page

    run_tick_for_app(app)
    (received,) = smtp.wait_for(1)
    assert received.rcpt_tos == [NEW_EMAIL]
    assert received.message["Subject"] == "You are invited to help run Test Parent Carer Forum"
    text, _html = parts(received.message)
    assert "works once, for 72 hours" in flat(text)
    path = path_of(link_to(received.message, "/admin/invitation/"))

    visitor = app.test_client()
    page = visitor.get(path)
    assert page.status_code == 200
    assert NEW_EMAIL in page.get_data(as_text=True) and "Sender" in page.get_data(as_text=True)
    refused = choose_password(visitor, path, "Password1234!")
    assert refused.status_code == 400
    assert "too easy to guess" in refused.get_data(as_text=True)
    assert choose_password(visitor, path, "short").status_code == 400
    with app.app_context():
        assert db.session.scalar(select(Admin).where(Admin.email == NEW_EMAIL)) is None

    accepted = choose_password(visitor, path, GOOD_PASSWORD)
    assert accepted.status_code == 303 and accepted.headers["Location"].endswith("/admin/login")
    newcomer, status = log_in(app, NEW_EMAIL, GOOD_PASSWORD)
    assert status == 303
    assert newcomer.get(DASHBOARD).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(Admin.role).where(Admin.email == NEW_EMAIL)) is AdminRole.SENDER

    again = app.test_client().get(path)
    assert again.status_code == 410
    assert "already been used" in again.get_data(as_text=True)
    assert "Invitations not yet accepted" not in owner.get("/admin/admins").get_data(as_text=True)


def test_withdrawn_replaced_expired_and_tampered_invitation_links_are_refused(app, clock, smtp):
    """V4: withdrawing (after a confirmation page) or sending again kills the older link; 72 hours on, the link
    has expired; a tampered token is refused. Each gets a clear 410 page and creates no admin."""
    owner = logged_in_admin(app, clock)
    invite(owner, "first@example.org")
    withdrawn = mailed_link(app, smtp, "/admin/invitation/", "first@example.org")
    with app.app_context():
        from mailer.models import AdminInvitation

        first_id = db.session.scalar(select(AdminInvitation.id).where(AdminInvitation.email == "first@example.org"))
    confirm_page = owner.get(f"/admin/admins/invitations/{first_id}/withdraw")
    assert confirm_page.status_code == 200 and "Yes, withdraw it" in confirm_page.get_data(as_text=True)
    response = admin_post(owner, f"/admin/admins/invitations/{first_id}/withdraw",
                          f"/admin/admins/invitations/{first_id}/withdraw")
    assert response.status_code == 303
    page = app.test_client().get(withdrawn)
    assert page.status_code == 410 and "withdrawn" in page.get_data(as_text=True)

    invite(owner, "second@example.org")
    replaced = mailed_link(app, smtp, "/admin/invitation/", "second@example.org")
    with app.app_context():
        from mailer.models import AdminInvitation

        second_id = db.session.scalar(select(AdminInvitation.id).where(AdminInvitation.email == "second@example.org"))
    assert admin_post(owner, "/admin/admins", f"/admin/admins/invitations/{second_id}/resend").status_code == 303
    fresh = mailed_link(app, smtp, "/admin/invitation/", "second@example.org")
    assert fresh != replaced
    assert app.test_client().get(replaced).status_code == 410
    assert app.test_client().get(fresh[:-3] + ("AAA" if not fresh.endswith("AAA") else "BBB")).status_code == 410
    assert app.test_client().get(fresh).status_code == 200

    clock.advance(hours=72, seconds=1)
    expired = app.test_client().get(fresh)
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(Admin.email)).all() == [ADMIN_EMAIL]


def test_a_removed_admin_is_logged_out_at_their_next_request(app, clock):
    """V4: an owner removes an admin after a confirmation page; the admin's open session ends at once."""
    owner = logged_in_admin(app, clock)
    sender_id = add_admin(app, clock, "sender@example.org", AdminRole.SENDER)
    sender, status = log_in(app, "sender@example.org", ADMIN_PASSWORD)
    assert status == 303 and sender.get(DASHBOARD).status_code == 200

    confirm_page = owner.get(f"/admin/admins/{sender_id}/remove")
    assert confirm_page.status_code == 200 and "Yes, remove them" in confirm_page.get_data(as_text=True)
    removed = admin_post(owner, f"/admin/admins/{sender_id}/remove", f"/admin/admins/{sender_id}/remove")
    assert removed.status_code == 303
    assert sent_to_login(sender.get(DASHBOARD))
    assert log_in(app, "sender@example.org", ADMIN_PASSWORD)[1] == 400
    owner.get("/admin/admins")  # shows the flashed "no longer an admin"
    assert "sender@example.org" not in owner.get("/admin/admins").get_data(as_text=True)


def test_the_last_owner_can_be_neither_removed_nor_demoted(app, clock):
    """V4: removing or demoting the only owner is refused with a clear 409 page and changes nothing; with a
    second owner, the same demotion works."""
    owner = logged_in_admin(app, clock)
    with app.app_context():
        owner_id = db.session.scalar(select(Admin.id).where(Admin.email == ADMIN_EMAIL))
    demoted = admin_post(owner, f"/admin/admins/{owner_id}/role", f"/admin/admins/{owner_id}/role", {"role": "writer"})
    assert demoted.status_code == 409
    assert "at least one owner" in demoted.get_data(as_text=True)
    removed = admin_post(owner, f"/admin/admins/{owner_id}/remove", f"/admin/admins/{owner_id}/remove")
    assert removed.status_code == 409
    with app.app_context():
        assert db.session.scalar(select(Admin.role).where(Admin.id == owner_id)) is AdminRole.OWNER
    assert owner.get("/admin/admins").status_code == 200

    other_id = add_admin(app, clock, "other.owner@example.org", AdminRole.OWNER)
    response = admin_post(owner, f"/admin/admins/{other_id}/role", f"/admin/admins/{other_id}/role",
                          {"role": "writer"})
    assert response.status_code == 303
    with app.app_context():
        assert db.session.scalar(select(Admin.role).where(Admin.id == other_id)) is AdminRole.WRITER


def test_only_owners_reach_the_admins_pages(app, clock):
    """V4: a sender or writer gets 403 on the admins page and its actions, but can open their own account."""
    logged_in_admin(app, clock)
    add_admin(app, clock, "writer@example.org", AdminRole.WRITER)
    writer, _ = log_in(app, "writer@example.org", ADMIN_PASSWORD)
    assert writer.get("/admin/admins").status_code == 403
    assert writer.get("/admin/admins/1/remove").status_code == 403
    assert writer.get("/admin/account").status_code == 200
    assert "Admins</a>" not in writer.get("/admin/account").get_data(as_text=True)


def test_password_reset_through_real_email(app, clock, smtp):
    """V4: "Forgot your password?" answers the same for an unknown address (and mails nobody); the mailed link
    sets a new password (a common one refused), ends the admin's old session, and then cannot be used again."""
    owner = logged_in_admin(app, clock)
    assert "Forgot your password?" in app.test_client().get("/admin/login").get_data(as_text=True)

    stranger = app.test_client()
    token = csrf_token(stranger.get("/admin/forgot-password").get_data(as_text=True))
    unknown = stranger.post("/admin/forgot-password", data={"csrf_token": token, "email": "nobody@example.org"})
    known = stranger.post("/admin/forgot-password", data={"csrf_token": token, "email": ADMIN_EMAIL.upper()})
    assert unknown.status_code == known.status_code == 303
    assert unknown.headers["Location"] == known.headers["Location"]
    run_tick_for_app(app)
    (received,) = smtp.wait_for(1)
    assert received.rcpt_tos == [ADMIN_EMAIL]
    assert "works once, for 1 hour" in flat(parts(received.message)[0])
    path = path_of(link_to(received.message, "/admin/reset-password/"))

    assert choose_password(stranger, path, "trustno1trustno1").status_code == 400
    assert owner.get(DASHBOARD).status_code == 200, "a refused password changes nothing"
    assert choose_password(stranger, path, GOOD_PASSWORD).status_code == 303
    assert sent_to_login(owner.get(DASHBOARD))
    assert log_in(app, ADMIN_EMAIL, ADMIN_PASSWORD)[1] == 400
    assert log_in(app, ADMIN_EMAIL, GOOD_PASSWORD)[1] == 303
    used = stranger.get(path)
    assert used.status_code == 410 and "already been used" in used.get_data(as_text=True)


def test_a_reset_link_expires_after_an_hour(app, clock, smtp):
    """V4: the reset link works for one hour only."""
    logged_in_admin(app, clock)
    client = app.test_client()
    token = csrf_token(client.get("/admin/forgot-password").get_data(as_text=True))
    client.post("/admin/forgot-password", data={"csrf_token": token, "email": ADMIN_EMAIL})
    path = mailed_link(app, smtp, "/admin/reset-password/", ADMIN_EMAIL)
    clock.advance(minutes=61)
    assert client.get(path).status_code == 410


def test_reset_requests_are_rate_limited_per_address(make_app, clock):
    """V4: reset requests for one address are limited whoever asks (MAILER_RESET_RATE_LIMIT_ADDRESS)."""
    app = make_app(RATELIMIT_ENABLED=True, MAILER_RESET_RATE_LIMIT_ADDRESS="2 per hour")
    client = app.test_client()
    token = csrf_token(client.get("/admin/forgot-password").get_data(as_text=True))

    def ask(email: str, ip: str) -> int:
        return client.post("/admin/forgot-password", environ_base={"REMOTE_ADDR": ip},
                           data={"csrf_token": token, "email": email}).status_code

    assert [ask(ADMIN_EMAIL, "192.0.2.1"), ask(ADMIN_EMAIL, "192.0.2.2")] == [303, 303]
    assert ask(ADMIN_EMAIL, "192.0.2.3") == 429
    assert ask("someone.else@example.org", "192.0.2.3") == 303


def test_changing_the_password_ends_the_other_sessions_only(app, clock):
    """V4: the current password is needed; a new one ends every other session, this one stays logged in."""
    here = logged_in_admin(app, clock)
    elsewhere, _ = log_in(app, ADMIN_EMAIL, ADMIN_PASSWORD)
    wrong = admin_post(here, "/admin/account/password", "/admin/account/password",
                       {"current_password": "not it at all", "password": GOOD_PASSWORD})
    assert wrong.status_code == 400 and "current password is not right" in wrong.get_data(as_text=True)
    common = admin_post(here, "/admin/account/password", "/admin/account/password",
                        {"current_password": ADMIN_PASSWORD, "password": "change-me-please"})
    assert common.status_code == 400
    assert elsewhere.get(DASHBOARD).status_code == 200

    changed = admin_post(here, "/admin/account/password", "/admin/account/password",
                         {"current_password": ADMIN_PASSWORD, "password": GOOD_PASSWORD})
    assert changed.status_code == 303
    assert here.get(DASHBOARD).status_code == 200
    assert sent_to_login(elsewhere.get(DASHBOARD))
    assert log_in(app, ADMIN_EMAIL, GOOD_PASSWORD)[1] == 303


def test_an_email_change_is_confirmed_at_the_new_address_and_the_old_one_told(app, clock, smtp):
    """V4: a new address changes nothing until the link mailed to it is followed (GET shows a button, POST
    confirms); then the admin logs in with it, and the old address gets a notice with no link."""
    admin = logged_in_admin(app, clock)
    response = admin_post(admin, "/admin/account/email", "/admin/account/email", {"email": "Moved@Example.org"})
    assert response.status_code == 303
    path = mailed_link(app, smtp, "/admin/confirm-email/", "moved@example.org")
    with app.app_context():
        assert db.session.scalar(select(Admin.email)) == ADMIN_EMAIL

    page = app.test_client().get(path)
    assert page.status_code == 200 and "moved@example.org" in page.get_data(as_text=True)
    visitor = app.test_client()
    page = visitor.get(path)
    confirmed = visitor.post(path, data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert confirmed.status_code == 200

    before = len(smtp.received)
    run_tick_for_app(app)
    (notice,) = smtp.wait_for(before + 1)[before:]
    assert notice.rcpt_tos == [ADMIN_EMAIL]
    assert "was changed" in notice.message["Subject"]
    text, _html = parts(notice.message)
    assert "moved@example.org" not in text and "/admin/" not in text
    assert log_in(app, "moved@example.org", ADMIN_PASSWORD)[1] == 303
    assert log_in(app, ADMIN_EMAIL, ADMIN_PASSWORD)[1] == 400
    assert visitor.get(path).status_code == 410


def test_two_owners_demoting_each_other_at_once_leave_one_owner(app, clock):
    """V4: two owners demote each other in overlapping transactions: the second waits for the first (row locks on
    PostgreSQL, the write lock on SQLite), then sees it and is refused with LastOwner; one owner remains."""
    import threading

    from sqlalchemy.orm import Session

    from mailer.admins.team import change_role
    from mailer.errors import LastOwner

    first = add_admin(app, clock, "first.owner@example.org", AdminRole.OWNER)
    second = add_admin(app, clock, "second.owner@example.org", AdminRole.OWNER)
    outcome: list[str] = []
    with app.app_context():
        engine = db.engine
    one, other = Session(engine), Session(engine)
    try:
        change_role(one, second, AdminRole.WRITER)  # not committed yet: holds its locks

        def demote_the_first() -> None:
            try:
                change_role(other, first, AdminRole.WRITER)
                other.commit()
                outcome.append("changed")
            except LastOwner:
                other.rollback()
                outcome.append("refused")

        thread = threading.Thread(target=demote_the_first)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the second change waits for the first transaction"
        one.commit()
        thread.join(20)
        assert outcome == ["refused"]
    finally:
        one.close()
        other.close()
    with app.app_context():
        owners = db.session.scalars(select(Admin.email).where(Admin.role == AdminRole.OWNER)).all()
        assert owners == ["first.owner@example.org"]


def test_bad_invitations_get_a_clear_400_and_change_nothing(app, clock, smtp):
    """V4, bad input: an invalid address, an existing admin's address or an unknown role gets the form back with
    the problem named (400); no invitation is made and no mail queued."""
    owner = logged_in_admin(app, clock)
    for data, problem in (
        ({"email": "not an address", "role": "sender"}, "Enter a valid email address"),
        ({"email": ADMIN_EMAIL.upper(), "role": "writer"}, "already an admin with this email address"),
        ({"email": NEW_EMAIL, "role": "superuser"}, "Not a valid choice"),
        ({"email": NEW_EMAIL}, "Choose a role"),
    ):
        response = admin_post(owner, "/admin/admins", "/admin/admins/invite", data)
        assert response.status_code == 400, data
        assert problem in response.get_data(as_text=True), data
    assert "None at the moment." in owner.get("/admin/admins").get_data(as_text=True)
    assert run_tick_for_app(app).outbox.sent == 0


def test_account_changes_are_on_the_audit_log_with_their_actor(app, clock, smtp):
    """V5/issue 19: invitation, acceptance, role change, removal and a password reset are each recorded with who
    did it and the object; the removed admin's rows stay."""
    from mailer.models import AuditEvent

    owner = logged_in_admin(app, clock)
    invite(owner)
    path = mailed_link(app, smtp, "/admin/invitation/", NEW_EMAIL)
    assert choose_password(app.test_client(), path, GOOD_PASSWORD).status_code == 303
    with app.app_context():
        new_id = db.session.scalar(select(Admin.id).where(Admin.email == NEW_EMAIL))
    admin_post(owner, f"/admin/admins/{new_id}/role", f"/admin/admins/{new_id}/role", {"role": "writer"})
    admin_post(owner, f"/admin/admins/{new_id}/remove", f"/admin/admins/{new_id}/remove")
    client = app.test_client()
    token = csrf_token(client.get("/admin/forgot-password").get_data(as_text=True))
    client.post("/admin/forgot-password", data={"csrf_token": token, "email": ADMIN_EMAIL})
    reset = mailed_link(app, smtp, "/admin/reset-password/", ADMIN_EMAIL)
    assert choose_password(client, reset, GOOD_PASSWORD).status_code == 303

    with app.app_context():
        rows = [
            (e.admin_email, e.action, e.object_type, e.object_id)
            for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))
            if e.action not in ("logged in", "failed log-in")
        ]
    assert rows == [
        (ADMIN_EMAIL, "admin invited", "admin_invitation", rows[0][3]),
        (NEW_EMAIL, "invitation accepted", None, None),
        (ADMIN_EMAIL, "admin role changed to writer", "admin", str(new_id)),
        (ADMIN_EMAIL, "admin removed", "admin", str(new_id)),
        (ADMIN_EMAIL, "password reset by email", None, None),
    ]
