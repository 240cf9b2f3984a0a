"""Issue 19 (V4, V5), end to end as a new volunteer lives it: invited by email, chooses a password, logs in, turns
on two-step login with a real TOTP code from the secret the page shows, logs out, logs in with a code, then with a
recovery code, which is refused the second time; every step is on the audit log under the right person."""

from __future__ import annotations

import re
from typing import Any

import pyotp
from sqlalchemy import select

from mailer.extensions import db
from mailer.models import AuditEvent
from mailer.worker.runner import run_tick_for_app
from support.factories import ADMIN_EMAIL, admin_post, logged_in_admin
from support.mail import link_to
from support.web import csrf_token, path_of

VOLUNTEER = "sam.volunteer@example.org"
PASSWORD = "kettle orchard lantern pebble"
DASHBOARD = "/admin/"


def post_form(client: Any, path: str, **fields: str) -> Any:
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    return client.post(path, data={"csrf_token": csrf_token(page.get_data(as_text=True)), **fields})


def lands_on(response: Any, path: str) -> bool:
    return response.status_code in (302, 303) and response.headers["Location"].split("?")[0].endswith(path)


def test_a_new_volunteer_from_invitation_to_two_step_login(app: Any, clock: Any, smtp: Any) -> None:
    """Invite -> accept through the mailed link -> set a password -> log in -> two-step set-up (code computed from
    the shown secret) -> log out -> log in with a code -> with a recovery code -> that recovery code refused."""
    owner = logged_in_admin(app, clock)
    assert admin_post(owner, "/admin/admins", "/admin/admins/invite", {"email": VOLUNTEER, "role": "writer"}
                      ).status_code == 303
    run_tick_for_app(app)
    (invitation,) = [r for r in smtp.wait_for(1) if r.rcpt_tos == [VOLUNTEER]]
    accept = path_of(link_to(invitation.message, "/admin/invitation/"))

    volunteer = app.test_client()
    assert lands_on(post_form(volunteer, accept, password=PASSWORD), "/admin/login")
    assert lands_on(post_form(volunteer, "/admin/login", email=VOLUNTEER, password=PASSWORD), DASHBOARD)
    assert volunteer.get(DASHBOARD).status_code == 200
    assert volunteer.get("/admin/members").status_code == 403, "a writer sees no member data"

    page = volunteer.get("/admin/account/two-step").get_data(as_text=True)
    secret = re.search(r'id="two-step-secret" class="secret">([A-Z2-7 ]+)<', page)
    assert secret and "<svg" in page, "the secret as text and as an inline QR code"
    totp = pyotp.TOTP(secret.group(1).replace(" ", ""))
    shown = volunteer.post("/admin/account/two-step",
                           data={"csrf_token": csrf_token(page), "code": totp.at(clock.now())})
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", shown.get_data(as_text=True))
    assert shown.status_code == 200 and len(codes) == 10
    assert admin_post(volunteer, DASHBOARD, "/admin/logout").status_code == 303

    assert lands_on(post_form(volunteer, "/admin/login", email=VOLUNTEER, password=PASSWORD), "/admin/login/code")
    assert lands_on(volunteer.get(DASHBOARD), "/admin/login"), "the password alone does not log in"
    clock.advance(seconds=30)  # the set-up code's time-step is used up
    assert lands_on(post_form(volunteer, "/admin/login/code", code=totp.at(clock.now())), DASHBOARD)
    assert admin_post(volunteer, DASHBOARD, "/admin/logout").status_code == 303

    assert lands_on(post_form(volunteer, "/admin/login", email=VOLUNTEER, password=PASSWORD), "/admin/login/code")
    assert lands_on(post_form(volunteer, "/admin/login/code", code=codes[0]), DASHBOARD)
    assert admin_post(volunteer, DASHBOARD, "/admin/logout").status_code == 303

    assert lands_on(post_form(volunteer, "/admin/login", email=VOLUNTEER, password=PASSWORD), "/admin/login/code")
    refused = post_form(volunteer, "/admin/login/code", code=codes[0])
    assert refused.status_code == 400 and lands_on(volunteer.get(DASHBOARD), "/admin/login")

    with app.app_context():
        trail = db.session.execute(
            select(AuditEvent.admin_email, AuditEvent.action).order_by(AuditEvent.id)
        ).all()
        db.session.remove()
    mine = [action for who, action in trail if who == VOLUNTEER]
    assert (ADMIN_EMAIL, "admin invited") in trail
    assert mine == [
        "invitation accepted", "logged in", "two-step login turned on", "logged out", "logged in", "logged out",
        "logged in with a recovery code", "logged out", "failed log-in (wrong two-step code)",
    ], mine
