"""R2 (issue 20 part 5): /join/embed, the join form for a frame on the forum's own website.

Driven with a client that keeps no cookies, as a browser in a cross-site frame does; the real browser test is
tests/browser/test_embed_pages.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from mailer.extensions import db
from mailer.models import JoinRequest, Member, MemberStatus
from mailer.worker.runner import run_tick_for_app
from support.factories import logged_in_admin
from support.mail import link_to
from support.web import join, path_of, post_button

FORUM_SITE = "https://www.forum-site.example"
OWN = "https://forum.test"  # MAILER_BASE_URL in the tests
TOKEN = re.compile(r'name="form_token" type="hidden" value="([^"]+)"|name="form_token" value="([^"]+)"')


@pytest.fixture
def embed_app(make_app: Any) -> Any:
    return make_app(MAILER_EMBED_ORIGINS=f"{FORUM_SITE} http://127.0.0.1:8081")


def form_token(html: str) -> str:
    match = TOKEN.search(html)
    assert match, "no form token on the page"
    return match.group(1) or match.group(2)


def embed_post(client: Any, *, origin: str | None = OWN, token: str | None = None, email: str = "framed@example.org",
               **extra: str) -> Any:
    page = client.get("/join/embed")
    data = {
        "form_token": form_token(page.get_data(as_text=True)) if token is None else token,
        "name": "Fran Framed",
        "email": email,
        "social_media": "no",
        "groups": ["1"],
        "consent": "y",
        **extra,
    }
    headers = {"Origin": origin} if origin else {}
    return client.post("/join/embed", data=data, headers=headers)


def test_only_the_embed_page_may_be_framed_and_only_by_listed_origins(embed_app):
    """R2: /join/embed says frame-ancestors 'self' and the listed origins, sends no X-Frame-Options and sets no
    cookie; every other page keeps frame-ancestors 'none' and X-Frame-Options DENY."""
    client = embed_app.test_client(use_cookies=False)
    page = client.get("/join/embed")
    assert page.status_code == 200
    policy = page.headers["Content-Security-Policy"]
    assert f"frame-ancestors 'self' {FORUM_SITE} http://127.0.0.1:8081;" in policy
    assert "X-Frame-Options" not in page.headers and "Set-Cookie" not in page.headers
    assert page.headers["Referrer-Policy"] == "same-origin"
    text = page.get_data(as_text=True)
    assert "Yes, I want Test Parent Carer Forum to email me" in text  # the consent wording (J1)
    assert 'name="website"' in text and 'name="csrf_token"' not in text
    assert 'target="_blank" rel="noopener">privacy notice (opens in a new tab)' in text
    for path in ("/join", "/", "/join/check-your-email"):
        other = client.get(path)
        assert "frame-ancestors 'none'" in other.headers["Content-Security-Policy"], path
        assert other.headers["X-Frame-Options"] == "DENY", path


def test_with_no_origins_listed_only_our_own_pages_may_frame_it(app):
    """R2: MAILER_EMBED_ORIGINS empty (the default) leaves frame-ancestors 'self' alone."""
    policy = app.test_client().get("/join/embed").headers["Content-Security-Policy"]
    assert "frame-ancestors 'self';" in policy


def test_join_from_the_embed_without_cookies_confirms_by_email(embed_app, smtp):
    """R2/J1/J2: a post with the form token and our Origin, no cookie at all, queues the join; the confirmation
    email arrives and confirming it makes the member."""
    client = embed_app.test_client(use_cookies=False)
    response = embed_post(client)
    assert response.status_code == 303 and path_of(response.headers["Location"]) == "/join/embed/check-your-email"
    done = client.get("/join/embed/check-your-email")
    assert "Check your email" in done.get_data(as_text=True)
    assert "frame-ancestors 'self'" in done.headers["Content-Security-Policy"]
    run_tick_for_app(embed_app)
    message = smtp.wait_for(1)[0].message
    assert message["To"].addresses[0].addr_spec == "framed@example.org"
    assert post_button(embed_app.test_client(), path_of(link_to(message, "/confirm/"))).status_code == 200
    with embed_app.app_context():
        assert db.session.scalar(select(Member.status)) is MemberStatus.MEMBER


@pytest.mark.parametrize(
    "origin, token, referer",
    [
        ("https://evil.example", None, None),  # another site's page posting here
        ("null", None, None),  # an opaque origin, and no Referer
        (None, None, None),  # neither Origin nor Referer
        (None, None, "https://evil.example/page"),
        (OWN, "", None),  # no form token
        (OWN, "not.a.token", None),
        (OWN, "InN0cmFuZ2VyIg.aW1wb3N0ZXI.c2lnbmF0dXJl", None),  # shaped like one, not signed by us
    ],
)
def test_forged_posts_are_refused_and_change_nothing(embed_app, origin, token, referer):
    """R2: a post from another origin, with no origin, or without a valid form token gets the 400 form page and
    stores nothing."""
    client = embed_app.test_client(use_cookies=False)
    page = client.get("/join/embed")
    data = {"form_token": form_token(page.get_data(as_text=True)) if token is None else token, "name": "X",
            "email": "forged@example.org", "social_media": "no", "consent": "y"}
    headers = {k: v for k, v in {"Origin": origin, "Referer": referer}.items() if v is not None}
    response = client.post("/join/embed", data=data, headers=headers)
    assert response.status_code == 400
    with embed_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(JoinRequest)) == 0


def test_a_referer_from_our_own_page_is_enough_and_a_stale_token_is_refused(embed_app, clock):
    """R2: without an Origin header, our own Referer passes; a form token older than six hours does not."""
    client = embed_app.test_client(use_cookies=False)
    html = client.get("/join/embed").get_data(as_text=True)
    data = {"form_token": form_token(html), "name": "Rita", "email": "rita@example.org", "social_media": "yes",
            "consent": "y"}
    assert client.post("/join/embed", data=data, headers={"Referer": f"{OWN}/join/embed"}).status_code == 303
    clock.advance(hours=7)
    stale = client.post("/join/embed", data=data, headers={"Origin": OWN})
    assert stale.status_code == 400
    with embed_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(JoinRequest)) == 1


def test_embed_keeps_the_join_rules(embed_app):
    """J1 through the embed: missing consent is a 400 with the message, the honeypot answers like a success and
    stores nothing."""
    client = embed_app.test_client(use_cookies=False)
    no_consent = embed_post(client, consent="")
    assert no_consent.status_code == 400
    assert "Tick the box to say you want to get our emails." in no_consent.get_data(as_text=True)
    assert "frame-ancestors 'self'" in no_consent.headers["Content-Security-Policy"]
    bot = embed_post(client, website="https://spam.example")
    assert bot.status_code == 303
    with embed_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(JoinRequest)) == 0


def test_the_embed_and_the_join_page_share_their_rate_limits(make_app):
    """J1 rate limits: posts to /join and /join/embed count together, per IP and per address typed."""
    app = make_app(RATELIMIT_ENABLED=True, MAILER_JOIN_RATE_LIMIT_PER_ADDRESS="2 per hour")
    client = app.test_client()
    statuses = [
        join(client, email="Limited@Example.org").status_code,
        embed_post(client, email="limited@example.org").status_code,
        embed_post(client, email="limited@example.org").status_code,
        join(client, email="limited@example.org").status_code,
    ]
    assert statuses == [303, 303, 429, 429]


def test_admin_page_shows_the_snippets_to_copy(embed_app, clock):
    """R2: /admin/reach/embed (logged in only) shows the iframe snippet for /join/embed, the button snippet for
    /join, and which websites may frame the form."""
    assert embed_app.test_client().get("/admin/reach/embed").status_code in (302, 303)
    admin = logged_in_admin(embed_app, clock)
    page = admin.get("/admin/reach/embed")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert '&lt;iframe src="https://forum.test/join/embed" title="Join the Test Parent Carer Forum email list"' in text
    assert '&lt;a href="https://forum.test/join" style=' in text
    assert f"<strong>{FORUM_SITE}</strong>" in text
    assert 'src="/join/embed"' in text  # the preview, framed by our own page


def test_admin_page_says_when_no_website_may_frame_the_form(app, clock):
    """R2: with MAILER_EMBED_ORIGINS empty the page says how to allow a website, and still offers the button."""
    text = logged_in_admin(app, clock).get("/admin/reach/embed").get_data(as_text=True)
    assert "No website may show the form in a frame yet" in text and "MAILER_EMBED_ORIGINS" in text


def test_the_reach_page_leads_to_the_embed_code(embed_app, clock):
    """R2: /admin/reach, where volunteers look for ways to reach parents, has an "Embed on your website" section
    that leads to the page with the code to copy and the preview."""
    text = logged_in_admin(embed_app, clock).get("/admin/reach").get_data(as_text=True)
    assert "Embed on your website" in text and 'href="/admin/reach/embed"' in text
