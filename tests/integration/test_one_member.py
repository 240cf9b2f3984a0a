"""V7 (issue 20 part 3) with a real SMTP server: an admin adds one member (confirmation email or evidence), edits
their details, and an address changes through a link sent to the new address, by an admin or by the member."""

from __future__ import annotations

import html
import re
import smtplib
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from mailer.extensions import db
from mailer.members import consent
from mailer.models import (
    AddressChange,
    BounceEvent,
    ConsentAction,
    ConsentEvent,
    ConsentMethod,
    ConsentWording,
    Member,
    MemberStatus,
    OutboxMessage,
    Suppression,
)
from mailer.settings import settings_of
from mailer.worker.bounce_intake import bounce_controller
from mailer.worker.runner import process_bounces_for_app, run_tick_for_app
from support.factories import add_member, admin_post, logged_in_admin
from support.mail import link_to
from support.smtp_sink import free_port
from support.web import csrf_token, join_and_confirm, path_of, post_button

CONFIRM_SUBJECT = "Please confirm you want to join Test Parent Carer Forum"
NEW_ADDRESS_SUBJECT = "Please confirm your new address for Test Parent Carer Forum"
CHANGED_SUBJECT = "Your Test Parent Carer Forum emails now go to a new address"


def page_text(response: Any) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def add_form(admin: Any, **fields: Any) -> Any:
    """Post the add-a-member page the way a browser would."""
    token = csrf_token(admin.get("/admin/members/new").get_data(as_text=True))
    data = {"csrf_token": token, "name": "Pat Phoned", "social_media": "no", "groups": ["1"], "how": "email"}
    data.update(fields)
    return admin.post("/admin/members/new", data=data)


def test_add_member_with_a_confirmation_email_that_arrives_and_confirms(app, clock, smtp):
    """V7: the default sends the join form's confirmation email; pressing its button makes them a member, and the
    request is recorded as the admin's."""
    admin = logged_in_admin(app, clock)
    page = admin.get("/admin/members/new")
    assert page.status_code == 200
    default = '<input checked id="how-0" name="how" required type="radio" value="email">'
    assert default in page.get_data(as_text=True)  # the confirmation email is the default
    response = add_form(admin, email="Pat@Example.org")
    assert response.status_code == 303
    member_path = path_of(response.headers["Location"])
    assert "A confirmation email is on its way to Pat@example.org" in page_text(admin.get(member_path))
    with app.app_context():
        member = db.session.scalars(select(Member)).one()
        assert member.status is MemberStatus.PENDING
        event = db.session.scalars(select(ConsentEvent)).one()
        assert (event.action, event.method) == (ConsentAction.REQUESTED, ConsentMethod.ADMIN)
        assert event.admin_id is not None

    run_tick_for_app(app)
    message = smtp.wait_for(1)[0].message
    assert message["Subject"] == CONFIRM_SUBJECT and message["To"].addresses[0].addr_spec == "Pat@example.org"
    assert post_button(app.test_client(), path_of(link_to(message, "/confirm/"))).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(Member.status)) is MemberStatus.MEMBER
    assert add_form(admin, email="pat@example.org").status_code == 400  # already a member: said plainly


def test_add_member_with_evidence_is_a_member_at_once(app, clock, smtp):
    """V7/C1: 'they agreed by phone' makes a member at once with a consent row holding the method, the date, the
    wording, the note and the admin's id; the member page shows it and a welcome email goes out."""
    admin = logged_in_admin(app, clock)
    with app.app_context():
        wording_id = db.session.scalars(select(ConsentWording.id)).first()
    agreed = clock.now().date() - timedelta(days=2)
    response = add_form(
        admin, email="phoned@example.org", how="phone", agreed_on=agreed.isoformat(), wording=str(wording_id),
        note="Rang the office on Tuesday; spoke to Sam.",
    )
    assert response.status_code == 303, page_text(response)
    with app.app_context():
        member = db.session.scalars(select(Member)).one()
        assert member.status is MemberStatus.MEMBER and member.confirmed_at is not None
        assert [g.id for g in member.groups] == [1]
        event = db.session.scalars(select(ConsentEvent)).one()
        assert (event.action, event.method) == (ConsentAction.CONFIRMED, ConsentMethod.PHONE)
        assert event.agreed_on == agreed and event.wording_id == wording_id
        assert event.note == "Rang the office on Tuesday; spoke to Sam."
        assert event.admin_id is not None and event.detail["wording_as_shown"].startswith("Yes, I want Test Parent")
    detail = page_text(admin.get(path_of(response.headers["Location"])))
    assert "By phone, recorded by an admin Admin: admin@forum.example" in detail
    assert "Admin's note: Rang the office on Tuesday; spoke to Sam." in detail
    run_tick_for_app(app)
    welcome = smtp.wait_for(1)[0].message
    assert welcome["Subject"] == "Welcome to Test Parent Carer Forum"
    assert "You asked us to add you" in welcome.get_body(("plain",)).get_content()
    assert "/unsubscribe/" in link_to(welcome, "/unsubscribe/")


def test_evidence_needs_a_past_date_and_a_wording(app, clock, smtp):
    """V7: bad evidence (no date, a date in the future, an unknown wording, a long note) gets a clear 400 and
    changes nothing."""
    admin = logged_in_admin(app, clock)
    tomorrow = (clock.now().date() + timedelta(days=2)).isoformat()
    cases = [
        ({"how": "paper_form"}, "Enter the date they agreed."),
        ({"how": "in_person", "agreed_on": tomorrow, "wording": "1"}, "must be today or in the past"),
        ({"how": "phone", "agreed_on": "2026-01-01", "wording": "999"}, "Not a valid choice"),
        ({"how": "phone", "agreed_on": "2026-01-01", "wording": "1", "note": "x" * 501}, "500 characters or fewer"),
        ({"how": "by pigeon"}, "Not a valid choice"),
    ]
    for fields, message in cases:
        response = add_form(admin, email="evidence@example.org", **fields)
        assert response.status_code == 400 and message in page_text(response), fields
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Member)) == 0
        assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 0


def test_a_suppressed_address_is_refused_without_saying_why(app, clock, smtp):
    """V7: an address on the do-not-email list is refused either way, with one message that does not say
    whether it bounced, complained or was erased; nothing is stored or sent."""
    admin = logged_in_admin(app, clock)
    with app.app_context():
        key = settings_of(app).suppression_key
        consent.suppress_address(db.session, key, "bounced@example.org", "bounced", clock=clock)
        consent.suppress_address(db.session, key, "erased@example.org", "erased", clock=clock)
        db.session.commit()
    for fields in ({"how": "email"}, {"how": "phone", "agreed_on": "2026-01-01", "wording": "1"}):
        response = add_form(admin, email="bounced@example.org", **fields)
        assert response.status_code == 400
        assert "on the do-not-email list, so it cannot be added here" in page_text(response)
    erased = add_form(admin, email="erased@example.org", how="phone", agreed_on="2026-01-01", wording="1")
    assert erased.status_code == 400 and "do-not-email list" in page_text(erased)
    run_tick_for_app(app)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Member)) == 0
    assert smtp.received == []


def test_admin_edits_name_and_groups_recorded_as_theirs(app, clock, smtp):
    """V7: an admin changes a member's name and groups; a preferences event records it with the admin's id."""
    with app.app_context():
        member_id = add_member("edit@example.org", clock=clock, name="Old Name", groups=[1])
    admin = logged_in_admin(app, clock)
    page = admin.get(f"/admin/members/{member_id}/edit")
    assert page.status_code == 200 and 'value="Old Name"' in page.get_data(as_text=True)
    response = admin_post(admin, f"/admin/members/{member_id}/edit", f"/admin/members/{member_id}/edit",
                          {"name": "New Name", "groups": ["2", "3"], "social_media": "yes"})
    assert response.status_code == 303
    bad = admin_post(admin, f"/admin/members/{member_id}/edit", f"/admin/members/{member_id}/edit",
                     {"name": "x" * 101, "groups": ["2"], "social_media": "yes"})
    assert bad.status_code == 400 and "100 characters or fewer" in page_text(bad)
    with app.app_context():
        member = db.session.get(Member, member_id)
        assert member.name == "New Name" and [g.id for g in member.groups] == [2, 3]
        event = db.session.scalars(select(ConsentEvent)).one()
        assert (event.action, event.method) == (ConsentAction.PREFERENCES, ConsentMethod.ADMIN)
        assert event.admin_id is not None and event.detail["name"] == {"from": "Old Name", "to": "New Name"}


def change_address_through_email(app: Any, smtp: Any, before: int, old: str, new: str) -> Any:
    """Send the new address's link, press it, and check the old address is told; returns the confirm page."""
    run_tick_for_app(app)
    message = smtp.wait_for(before + 1)[before].message
    assert message["Subject"] == NEW_ADDRESS_SUBJECT and message["To"].addresses[0].addr_spec == new
    url = link_to(message, "/change-address/")
    client = app.test_client()
    opened = client.get(path_of(url))
    assert opened.status_code == 200 and new in page_text(opened)
    with app.app_context():  # opening the link (a scanner would) changes nothing
        assert db.session.scalar(select(Member.email).where(Member.email == old)) == old
    token = csrf_token(opened.get_data(as_text=True))
    confirmed = client.post(path_of(url), data={"csrf_token": token})
    assert confirmed.status_code == 200 and f"Our emails now go to {new}" in page_text(confirmed)
    again = client.post(path_of(url), data={"csrf_token": token})
    assert again.status_code == 200  # a second press is harmless
    assert "You have already confirmed" in page_text(client.get(path_of(url)))
    run_tick_for_app(app)
    notice = smtp.wait_for(before + 2)[before + 1]
    assert notice.rcpt_tos == [old] and notice.message["Subject"] == CHANGED_SUBJECT
    with app.app_context():
        member = db.session.scalars(select(Member).where(Member.email == new)).one()
        event = db.session.scalars(select(ConsentEvent).where(ConsentEvent.action == ConsentAction.PREFERENCES)
                                   .order_by(ConsentEvent.id.desc())).first()
        assert event.detail["email"] == {"from": old, "to": new}
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == before + 2
    return member


def test_admin_changes_an_address_through_real_email(app, clock, smtp):
    """V7: the new address gets a link, the old stays until it is pressed, then the old address is told."""
    with app.app_context():
        member_id = add_member("jo@gmial.com", clock=clock, name="Jo")
    admin = logged_in_admin(app, clock)
    path = f"/admin/members/{member_id}/change-address"
    assert admin.get(path).status_code == 200
    same = admin_post(admin, path, path, {"email": "JO@gmial.com"})
    assert same.status_code == 400 and "already in use for this membership" in page_text(same)
    response = admin_post(admin, path, path, {"email": "jo@gmail.com"})
    assert response.status_code == 303
    detail = page_text(admin.get(f"/admin/members/{member_id}"))
    assert "A link to change their address to jo@gmail.com was sent" in detail
    member = change_address_through_email(app, smtp, 0, "jo@gmial.com", "jo@gmail.com")
    assert member.id == member_id
    with app.app_context():
        assert db.session.scalars(select(ConsentEvent.admin_id)).one() is not None


def test_member_changes_their_own_address_from_the_preferences_page(app, clock, smtp):
    """V7: a member asks from their preferences page; the same link, the same notice to the old address, and the
    links sent to the old address stop opening their details."""
    client = app.test_client()
    welcome = join_and_confirm(app, client, smtp, "own@example.org")
    preferences = path_of(link_to(welcome, "/preferences/"))
    page = client.get(preferences)
    assert "Change your email address" in page.get_data(as_text=True)
    response = admin_post(client, preferences + "/address", preferences + "/address", {"email": "new.own@example.org"})
    assert response.status_code == 200 and "Check your new inbox" in page_text(response)
    change_address_through_email(app, smtp, 2, "own@example.org", "new.own@example.org")
    assert client.get(preferences).status_code == 400  # the old address's link no longer opens their details


def test_member_address_change_tells_nobody_whether_another_address_is_listed(app, clock, smtp):
    """V7/J1: asking for an address that is another member's, or suppressed, answers exactly like a usable one
    and sends nothing; a bad address gets a clear 400."""
    client = app.test_client()
    welcome = join_and_confirm(app, client, smtp, "asker@example.org")
    with app.app_context():
        add_member("other@example.org", clock=clock)
        consent.suppress_address(db.session, settings_of(app).suppression_key, "gone@example.org", "complained",
                                 clock=clock)
        db.session.commit()
    path = path_of(link_to(welcome, "/preferences/")) + "/address"
    answers = []
    for address in ("other@example.org", "gone@example.org", "free@example.org"):
        answers.append(page_text(admin_post(client, path, path, {"email": address})))
        clock.advance(hours=2)
    assert answers[0] == answers[1] == answers[2]
    bad = admin_post(client, path, path, {"email": "not an address"})
    assert bad.status_code == 400
    run_tick_for_app(app)
    sent = smtp.wait_for(3)
    assert [r.rcpt_tos for r in sent[2:]] == [["free@example.org"]]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AddressChange)) == 1


def test_bounces_and_complaints_about_the_new_address_link_do_not_count_against_the_member(make_app, clock, smtp):
    """V7/S4: the link goes to an address that is not the member's yet (a typo bounces; a stranger may mark it as
    spam): a DSN or a complaint about it is recorded without a member, so their working address is not suppressed."""
    app = make_app(MAILER_BOUNCE_ADDRESS="bounces@forum.test", MAILER_BOUNCE_THRESHOLD=1)
    with app.app_context():
        member_id = add_member("kept@example.org", clock=clock)
    controller = bounce_controller(app, host="127.0.0.1", port=free_port())
    controller.start()
    try:
        admin = logged_in_admin(app, clock)
        path = f"/admin/members/{member_id}/change-address"
        assert admin_post(admin, path, path, {"email": "kept@exmaple.org"}).status_code == 303
        run_tick_for_app(app)
        verp = smtp.wait_for(1)[0].mail_from
        assert verp.startswith("bounces+")
        for name, rcpt in (("postfix_permanent.eml", verp), ("arf_complaint.eml", "bounces@forum.test")):
            raw = (Path(__file__).resolve().parent.parent / "data" / "dsn" / name).read_text("utf-8")
            raw = raw.replace("{{VERP}}", verp).replace("{{RCPT}}", "kept@exmaple.org").replace("\n", "\r\n")
            with smtplib.SMTP("127.0.0.1", controller.port, timeout=30) as client:
                client.sendmail("<>", [rcpt], raw.encode("utf-8"))
        assert process_bounces_for_app(app).processed == 2
    finally:
        controller.stop()
    with app.app_context():
        member = db.session.get(Member, member_id)
        assert (member.status, member.bounce_count) == (MemberStatus.MEMBER, 0)
        assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0
        assert db.session.scalars(select(BounceEvent.member_id)).all() == [None, None]
