"""J5 and C1-C3 with a real SMTP server: preferences, data download, erasure, re-joining, retention."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from mailer.extensions import db
from mailer.models import (
    Announcement,
    ConsentAction,
    ConsentEvent,
    ConsentWording,
    Delivery,
    Member,
    OutboxMessage,
    SocialMedia,
    Suppression,
)
from mailer.settings import settings_of
from mailer.worker.runner import process_join_requests_for_app, run_tick_for_app
from support.factories import add_member, admin_post, compose, link_key_of, logged_in_admin
from support.mail import link_to
from support.web import csrf_token, join, join_and_confirm, path_of, post_button


def counts(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        return {
            model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
            for model in (Member, ConsentEvent, OutboxMessage, Suppression, Delivery, Announcement)
        }


def send_to_everyone(app, admin, subject: str) -> None:  # type: ignore[no-untyped-def]
    announcement_id = compose(admin, subject=subject, body=f"# {subject}\n\nNews for everyone.")
    page = f"/admin/announcements/{announcement_id}"
    assert admin_post(admin, page, f"{page}/send-now").status_code == 303
    run_tick_for_app(app)


def test_change_preferences_from_the_emailed_link(app, client, smtp):
    """The preferences link in the welcome mail changes name, groups and the social-media answer, and records it."""
    welcome = join_and_confirm(app, client, smtp, "prefs@example.org", name="Pat", groups=[1])
    url = path_of(link_to(welcome, "/preferences/"))
    page = client.get(url)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    response = client.post(url, data={
        "csrf_token": csrf_token(page.get_data(as_text=True)), "name": "Patricia", "groups": ["2", "3"],
        "social_media": "no",
    })
    assert response.status_code == 200 and "Your changes are saved." in response.get_data(as_text=True)
    with app.app_context():
        member = db.session.scalars(select(Member)).one()
        assert (member.name, member.social_media) == ("Patricia", SocialMedia.NO)
        assert [g.id for g in member.groups] == [2, 3]
        event = db.session.scalars(select(ConsentEvent).where(ConsentEvent.action == ConsentAction.PREFERENCES)).one()
        assert event.detail["name"] == {"from": "Pat", "to": "Patricia"}
        assert event.detail["groups"]["to"] == ["Local Offer working group", "Voice and Influence group"]


def test_download_matches_the_database(app, client, smtp, clock):
    """The JSON download holds the profile, every consent event with its wording, and every email sent."""
    welcome = join_and_confirm(app, client, smtp, "data@example.org", name="Dana", groups=[2], social_media="no")
    admin = logged_in_admin(app, clock)
    send_to_everyone(app, admin, "Council letter")
    smtp.wait_for(3)
    response = client.get(path_of(link_to(welcome, "/preferences/")) + "/data.json")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment")
    data = json.loads(response.get_data(as_text=True))
    with app.app_context():
        member = db.session.scalars(select(Member)).one()
        wording = db.session.scalars(select(ConsentWording)).one()
        events = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
    assert data["profile"]["email"] == member.email == "data@example.org"
    assert data["profile"]["groups"] == ["Local Offer working group"]
    assert data["profile"]["social_media"] == "no"
    assert (
        [e["action"] for e in data["consent_history"]] == [e.action.value for e in events] == ["requested", "confirmed"]
    )
    assert all(e["wording"] == wording.text and e["privacy_notice_version"] == wording.privacy_notice_version
               for e in data["consent_history"])
    assert data["consent_history"][0]["detail"]["wording_as_shown"].startswith("Yes, I want Test Parent Carer Forum")
    assert data["emails_sent"] == [
        {"announcement": "Council letter", "outcome": "sent", "sent_at": data["emails_sent"][0]["sent_at"],
         "attempts": 1, "error": None}
    ]


def test_erase_then_rejoin_and_confirm(app, client, smtp, clock):
    """Erasure removes the person and keeps a hash; nothing reaches them; re-joining and confirming lifts it."""
    welcome = join_and_confirm(app, client, smtp, "erase@example.org")
    with app.app_context():
        add_member("stays@example.org", clock=clock)
    erase_url = path_of(link_to(welcome, "/preferences/")) + "/erase"
    assert "cannot be undone" in client.get(erase_url).get_data(as_text=True)
    erased = post_button(client, erase_url)
    assert erased.status_code == 200 and "Your details are erased" in erased.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Member)) == 1
        assert (
            db.session.scalar(
                select(func.count()).select_from(ConsentEvent).where(ConsentEvent.email == "erase@example.org")
            )
            == 0
        )
        suppression = db.session.scalars(select(Suppression)).one()
        assert "erase" not in suppression.address_hash and suppression.reason == "erased"
    # The old links are dead.
    assert client.get(path_of(link_to(welcome, "/preferences/"))).status_code == 400

    admin = logged_in_admin(app, clock)
    before = len(smtp.received)
    send_to_everyone(app, admin, "After erasure")
    smtp.wait_for(before + 1)
    assert [r.rcpt_tos for r in smtp.received[before:]] == [["stays@example.org"]]

    # Re-join: a confirmation goes out; until confirmed, no announcement.
    clock.advance(hours=2)
    join(client, email="erase@example.org")
    run_tick_for_app(app)
    confirmation = smtp.wait_for(before + 2)[-1].message
    assert confirmation["Subject"].startswith("Please confirm")
    send_to_everyone(app, admin, "Still pending")
    smtp.wait_for(before + 3)
    assert smtp.received[-1].rcpt_tos == ["stays@example.org"]
    assert post_button(client, path_of(link_to(confirmation, "/confirm/"))).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0
    run_tick_for_app(app)  # welcome
    count = len(smtp.received)
    send_to_everyone(app, admin, "Welcome back")
    arrived = smtp.wait_for(count + 2)[count:]
    assert sorted(r.rcpt_tos[0] for r in arrived) == ["erase@example.org", "stays@example.org"]


def test_bounce_suppression_blocks_rejoining(app, client, smtp, clock):
    """An address suppressed for bounces gets nothing when someone joins with it again."""
    from mailer.members.addresses import address_hash

    with app.app_context():
        key = settings_of(app).suppression_key
        db.session.add(
            Suppression(address_hash=address_hash(key, "bounced@example.org"), reason="bounces", created_at=clock.now())
        )
        db.session.commit()
    assert join(client, email="bounced@example.org").status_code == 303
    run_tick_for_app(app)
    assert smtp.received == []


@pytest.mark.parametrize("route", ["/preferences/{t}", "/preferences/{t}/data.json", "/preferences/{t}/erase"])
def test_preference_token_rules(app, client, smtp, clock, route):
    """Tampered, wrong-purpose and revoked preference tokens get a clear 400 and change nothing."""
    from mailer.mail.tokens import Purpose, make_token

    with app.app_context():
        member_id = add_member("tokens@example.org", clock=clock)
    secret = app.config["SECRET_KEY"]
    good = make_token(secret, Purpose.PREFERENCES, link_key_of(app, member_id), 1, clock=clock)
    wrong_purpose = make_token(secret, Purpose.CONFIRM, link_key_of(app, member_id), 1, clock=clock)
    revoked = make_token(secret, Purpose.PREFERENCES, link_key_of(app, member_id), 0, clock=clock)
    tampered = good[:-4] + ("abcd" if not good.endswith("abcd") else "efgh")
    before = counts(app)
    for token in (wrong_purpose, revoked, tampered, "x", "." * 600):
        assert client.get(route.format(t=token)).status_code == 400, token
    assert client.get(route.format(t=good)).status_code == 200
    assert counts(app) == before


def test_retention_purges_only_old_unconfirmed_signups(app, client, smtp, clock):
    """29-day-old pending signups stay, 31-day-old ones go; confirmed members and their history stay."""
    join_and_confirm(app, client, smtp, "member@example.org")
    join(client, email="old-pending@example.org")
    clock.advance(days=2)
    join(client, email="young-pending@example.org")
    run_tick_for_app(app)  # the worker carries out the join form posts
    clock.advance(days=29, hours=1)  # old: 31 days; young: 29 days
    result = app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0 and "purged 1 unconfirmed signup(s)" in result.output
    with app.app_context():
        emails = sorted(db.session.scalars(select(Member.email)))
        assert emails == ["member@example.org", "young-pending@example.org"]
        history = db.session.scalars(
            select(ConsentEvent.action).where(ConsentEvent.email == "member@example.org")
        ).all()
        assert history == [ConsentAction.REQUESTED, ConsentAction.CONFIRMED]


def test_lost_link_answers_the_same_and_mails_members_only(app, client, smtp, clock):
    """Asking for a new preferences link: same page for any address; only a member gets a mail, once an hour."""
    join_and_confirm(app, client, smtp, "lost@example.org")
    clock.advance(hours=2)  # past the one-mail-an-hour limit the confirmation started
    answers = []
    for email in ("lost@example.org", "nobody@example.org", "lost@example.org"):
        page = client.get("/preferences")
        response = client.post(
            "/preferences", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "email": email}
        )
        answers.append((response.status_code, response.headers.get("Location")))
    assert len(set(answers)) == 1 and answers[0][0] == 303
    run_tick_for_app(app)
    message = smtp.wait_for(3)[2].message
    assert message["Subject"] == "Your link to change your Test Parent Carer Forum details"
    assert client.get(path_of(link_to(message, "/preferences/"))).status_code == 200
    run_tick_for_app(app)
    assert len(smtp.received) == 3


def test_new_consent_wording_version(app, client, smtp, clock):
    """Publishing a wording makes a new version shown on the form; earlier events keep pointing at theirs."""
    join(client, email="before@example.org")
    process_join_requests_for_app(app)  # carried out under the wording it was shown
    admin = logged_in_admin(app, clock)
    response = admin_post(admin, "/admin/consent", "/admin/consent", {
        "text": "Yes, email me {forum_name} news. I can unsubscribe at any time.", "privacy_notice_version": "2027-01",
    })
    assert response.status_code == 303
    form = client.get("/join").get_data(as_text=True)
    assert "Yes, email me Test Parent Carer Forum news." in form
    join(client, email="after@example.org")
    process_join_requests_for_app(app)
    with app.app_context():
        versions = dict(
            db.session.execute(
                select(ConsentEvent.email, ConsentWording.version).join(
                    ConsentWording, ConsentWording.id == ConsentEvent.wording_id
                )
            ).all()
        )
        assert versions == {"before@example.org": 1, "after@example.org": 2}
        first = db.session.scalars(select(ConsentWording).where(ConsentWording.version == 1)).one()
        assert first.text.startswith("Yes, I want {forum_name}")
        event = db.session.scalars(select(ConsentEvent)).first()
        event.email = "changed@example.org"
        with pytest.raises(RuntimeError, match="append-only"):
            db.session.flush()
        db.session.rollback()


def test_bad_input_sweep_over_public_and_token_routes(app, client, smtp, clock):
    """Random bytes, huge and control-character fields, missing fields, wrong methods: never a 500, nothing changes."""
    import random

    from mailer.mail.tokens import Purpose, make_token

    with app.app_context():
        member_id = add_member("sweep@example.org", clock=clock)
    secret = app.config["SECRET_KEY"]
    tokens = {p: make_token(secret, p, link_key_of(app, member_id), 1, clock=clock) for p in Purpose}
    routes = [
        "/join",
        "/preferences",
        f"/confirm/{tokens[Purpose.CONFIRM]}",
        f"/unsubscribe/{tokens[Purpose.UNSUBSCRIBE]}",
        f"/preferences/{tokens[Purpose.PREFERENCES]}",
        f"/preferences/{tokens[Purpose.PREFERENCES]}/erase",
        f"/confirm/{tokens[Purpose.CONFIRM]}/new-link",
        "/archive/1",
        "/healthz",
    ]
    rng = random.Random(2026)
    values = [
        "",
        "x" * 10_000,
        "\x00\x01\x02",
        "a\r\nBcc: x@example.org",
        "\ud800".encode("utf-8", "surrogatepass").decode("latin-1"),
        "<script>alert(1)</script>",
        "ä" * 300,
        "99999999999999999999",
        "-1",
    ]
    fields = ["name", "email", "groups", "social_media", "consent", "website", "List-Unsubscribe"]
    before = counts(app)
    statuses = set()
    for _ in range(150):
        route = rng.choice(routes)
        method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH"])
        data = {field: rng.choice(values) for field in rng.sample(fields, rng.randint(0, len(fields)))}
        if rng.random() < 0.2:
            response = client.open(route, method=method, data=bytes(rng.randrange(256) for _ in range(200)),
                                   content_type="application/x-www-form-urlencoded")
        else:
            response = client.open(route, method=method, data=data)
        statuses.add(response.status_code)
        assert response.status_code < 500, (route, method, data)
    after = counts(app)
    # The only change allowed: nothing. (No valid CSRF token was ever sent, and one-click needs its exact value.)
    assert after == before, (before, after)
    assert statuses <= {200, 303, 400, 404, 405, 410, 413}


def test_joining_is_rate_limited_per_address_and_per_ip(make_app, smtp):
    """The same address from many IPs, and many addresses from one IP, get a clear 429 page; one mail at most."""
    app = make_app(
        RATELIMIT_ENABLED=True, MAILER_JOIN_RATE_LIMIT="4 per hour", MAILER_JOIN_RATE_LIMIT_PER_ADDRESS="2 per hour"
    )
    client = app.test_client()
    statuses = [
        join(client, email="target@example.org", environ_base={"REMOTE_ADDR": f"192.0.2.{i + 1}"}).status_code
        for i in range(3)
    ]
    assert statuses == [303, 303, 429]
    limited = join(client, email="target@example.org", environ_base={"REMOTE_ADDR": "192.0.2.50"})
    assert limited.status_code == 429 and "Too many attempts" in limited.get_data(as_text=True)
    per_ip = [join(client, email=f"p{i}@example.org", environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code
              for i in range(5)]
    assert per_ip == [303, 303, 303, 303, 429]
    run_tick_for_app(app)
    assert len(smtp.to("target@example.org")) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Member)) == 5
