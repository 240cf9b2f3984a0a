"""Issue 15 (high): an erased member's old links must never open, change or confirm the next person who joins.

Links used to carry only [member id, version]; SQLite gave a deleted member's id to the next signup, and a new
member starts at version 1. Now ids are never reused and links name a random per-member link key. Each test plays
the attack end to end through the real pages and a real SMTP sink, on SQLite and PostgreSQL: an outsider joins,
confirms and is erased (by themselves, by an admin, or by the purge of unconfirmed signups); a newcomer joins;
every old link the outsider kept is tried against the newcomer."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from mailer.extensions import db
from mailer.models import ConsentEvent, Member, MemberStatus
from mailer.worker.runner import run_tick_for_app
from support.factories import admin_post, logged_in_admin
from support.mail import link_to
from support.web import csrf_token, join, path_of, post_button

OUTSIDER = "outsider@example.org"
NEWCOMER = "newcomer@example.org"


def member_row(app: Any, email: str) -> Member | None:
    with app.app_context():
        member = db.session.scalar(select(Member).where(Member.email_key == email))
        if member is not None:
            db.session.expunge(member)
        return member


def consent_count(app: Any, member_id: int) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count()).select_from(ConsentEvent).where(ConsentEvent.member_id == member_id)
        )


def outsider_links(app: Any, client: Any, smtp: Any, *, confirm: bool) -> dict[str, str]:
    """Join (and confirm) as the outsider; keep every link the emails gave."""
    join(client, email=OUTSIDER, name="Outsider")
    run_tick_for_app(app)
    confirmation = smtp.wait_for(1)[0].message
    links = {"confirm": path_of(link_to(confirmation, "/confirm/"))}
    if confirm:
        assert post_button(client, links["confirm"]).status_code == 200
        run_tick_for_app(app)
        welcome = smtp.wait_for(2)[1].message
        links["preferences"] = path_of(link_to(welcome, "/preferences/"))
        links["unsubscribe"] = path_of(link_to(welcome, "/unsubscribe/"))
    return links


def newcomer_joins(app: Any, client: Any, outsider_id: int) -> Member:
    join(client, email=NEWCOMER, name="Nadia Newcomer", groups=[2])
    run_tick_for_app(app)
    newcomer = member_row(app, NEWCOMER)
    assert newcomer is not None and newcomer.status is MemberStatus.PENDING
    assert newcomer.id > outsider_id, "ids are never handed out twice"
    return newcomer


def try_every_old_link(app: Any, links: dict[str, str], newcomer: Member) -> None:
    """Each old link fails, shows nothing of the newcomer, and changes nothing about them."""
    before = consent_count(app, newcomer.id)
    attacker = app.test_client()
    responses = [attacker.get(links["confirm"])]
    page = attacker.get("/join")  # any page: a valid CSRF token for the button POSTs
    token = csrf_token(page.get_data(as_text=True))
    responses.append(attacker.post(links["confirm"], data={"csrf_token": token}))
    not_on_list = []
    if "preferences" in links:
        prefs = links["preferences"]
        responses += [
            attacker.get(prefs),
            attacker.get(prefs + "/data.json"),
            attacker.post(
                prefs, data={"csrf_token": token, "name": "Hijacked", "social_media": "yes", "groups": ["3"]}
            ),
            attacker.post(prefs + "/erase", data={"csrf_token": token}),
        ]
        # Unsubscribe links never die (J4): an erased member's says "not on our list", with a 200.
        not_on_list = [
            attacker.get(links["unsubscribe"]),
            attacker.post(links["unsubscribe"], data={"List-Unsubscribe": "One-Click"}),
            attacker.post(links["unsubscribe"], data={"csrf_token": token}),
        ]
    for response in responses:
        body = response.get_data(as_text=True)
        assert response.status_code in (400, 404, 410), (response.request.path, response.status_code)
        assert NEWCOMER not in body and "Nadia" not in body
    for response in not_on_list:
        body = response.get_data(as_text=True)
        assert response.status_code == 200 and "You are not on our list" in body, response.status_code
        assert NEWCOMER not in body and "Nadia" not in body
    after = member_row(app, NEWCOMER)
    assert after is not None
    assert (after.id, after.status, after.name, after.token_version) == (
        newcomer.id, MemberStatus.PENDING, "Nadia Newcomer", newcomer.token_version)
    assert consent_count(app, newcomer.id) == before, "no consent evidence was made up for the newcomer"


@pytest.mark.parametrize("erased_by", ["themselves", "an admin"])
def test_an_erased_members_old_links_never_reach_the_next_member(app, client, smtp, clock, erased_by):
    """Confirm, preferences, data download, change, erase and one-click unsubscribe links of an erased
    member all fail against whoever joins next (the unsubscribe link with a 200 "not on our list")."""
    links = outsider_links(app, client, smtp, confirm=True)
    outsider = member_row(app, OUTSIDER)
    assert outsider is not None and outsider.link_key not in links["confirm"].split(".")[0]  # the key is signed
    if erased_by == "themselves":
        erased = post_button(client, links["preferences"] + "/erase")
        assert erased.status_code == 200
    else:
        admin = logged_in_admin(app, clock)
        page = f"/admin/members/{outsider.id}/erase"
        assert admin_post(admin, page, page).status_code == 303
    assert member_row(app, OUTSIDER) is None
    newcomer = newcomer_joins(app, app.test_client(), outsider.id)
    try_every_old_link(app, links, newcomer)


def test_a_purged_signups_confirm_link_never_confirms_the_next_person(app, client, smtp, clock):
    """The 30-day purge of unconfirmed signups: the purged person's confirm link (still within its
    signature, just expired) cannot confirm the newcomer without their consent."""
    links = outsider_links(app, client, smtp, confirm=False)
    outsider = member_row(app, OUTSIDER)
    assert outsider is not None
    clock.advance(days=31)
    result = app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0 and "purged 1 unconfirmed signup(s)" in result.output, result.output
    newcomer = newcomer_joins(app, app.test_client(), outsider.id)
    try_every_old_link(app, links, newcomer)
    # Even asking for a new confirmation link with the old one sends the newcomer nothing.
    attacker = app.test_client()
    token = csrf_token(attacker.get("/join").get_data(as_text=True))
    sent_before = len(smtp.received)
    response = attacker.post(links["confirm"] + "/new-link", data={"csrf_token": token})
    assert response.status_code in (400, 404)
    run_tick_for_app(app)
    assert len(smtp.received) == sent_before


def test_links_show_no_member_id(app, client, smtp):
    """The token names a random key, so a link does not tell how many members there are."""
    links = outsider_links(app, client, smtp, confirm=True)
    outsider = member_row(app, OUTSIDER)
    assert outsider is not None
    import base64
    import json

    for path in links.values():
        payload = path.rsplit("/", 1)[1].split(".")[0]
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert decoded[0] == outsider.link_key and decoded[0] != outsider.id
