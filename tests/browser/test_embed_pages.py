"""R2 in headless Chromium: /join/embed inside a cross-site iframe, and a site that is not listed cannot frame it.

The app is served on http://127.0.0.1:<port>; the forum's "own website" (a page holding the iframe) on
http://localhost:<other port>, another site to the browser, so the frame is cross-site and gets no cookie
(SameSite=Lax, third-party cookies blocked): the form must work without one. Pages are axe-checked at phone and
desktop width."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select
from werkzeug.serving import BaseWSGIServer, make_server

from mailer.extensions import db
from mailer.models import Member, MemberStatus
from mailer.worker.runner import run_tick_for_app
from support.mail import link_to

from .conftest import VIEWPORTS, LiveServer

pytestmark = pytest.mark.browser


def serve(app: Any, host: str = "127.0.0.1") -> tuple[BaseWSGIServer, threading.Thread]:
    server: BaseWSGIServer = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    return server, thread


def stop(server: BaseWSGIServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@dataclass
class Sites:
    app: LiveServer
    listed: str  # the forum's website, in MAILER_EMBED_ORIGINS
    unlisted: str  # some other website


def forum_website(embed_url: dict[str, str]) -> Callable[..., Any]:
    """A WSGI app standing in for the forum's own website: one page with the join form in an iframe."""

    def page(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = (
            '<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8"><title>Our forum</title></head>'
            "<body><main><h1>Our forum's own website</h1>"
            f'<iframe id="join" src="{embed_url["url"]}" title="Join our email list" width="100%" height="1400">'
            "</iframe></main></body></html>"
        ).encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]

    return page


@pytest.fixture
def sites(make_app: Callable[..., Flask]) -> Iterator[Sites]:
    """The app on 127.0.0.1, the listed website and an unlisted one on localhost (bound to 127.0.0.1)."""
    embed_url: dict[str, str] = {}
    listed = serve(forum_website(embed_url))
    unlisted = serve(forum_website(embed_url))
    target: dict[str, Flask] = {}
    app_server = serve(lambda environ, start_response: target["app"](environ, start_response))
    url = f"http://127.0.0.1:{app_server[0].server_port}"
    listed_origin = f"http://localhost:{listed[0].server_port}"
    target["app"] = make_app(MAILER_BASE_URL=url, MAILER_EMBED_ORIGINS=listed_origin)
    embed_url["url"] = f"{url}/join/embed"
    try:
        yield Sites(LiveServer(target["app"], url), listed_origin, f"http://localhost:{unlisted[0].server_port}")
    finally:
        for server in (app_server, listed, unlisted):
            stop(*server)


@pytest.fixture
def embed_page(new_context: Callable[..., Any], viewport_name: str) -> Page:
    context = new_context(**VIEWPORTS[viewport_name])
    page: Page = context.new_page()
    return page


def test_join_from_inside_a_cross_site_iframe_then_confirm(embed_page: Page, sites: Sites, smtp, axe):
    """R2/J1/J2: a parent on the forum's website joins inside the frame (no cookie reaches it), the confirmation
    email arrives, and confirming it makes them a member."""
    page = embed_page
    page.goto(sites.listed + "/")
    frame = page.frame_locator("iframe#join")
    expect(frame.get_by_role("heading", level=1)).to_have_text("Join Test Parent Carer Forum's email list")
    axe(page)
    frame.get_by_label("Name", exact=True).fill("Fran Framed")
    frame.get_by_label("Email address").fill("fran@example.org")
    frame.get_by_label("Forum news").check()
    frame.get_by_label("No", exact=True).check()
    frame.get_by_role("button", name="Join").click()  # no consent ticked: the join form's message, in the frame
    expect(frame.get_by_role("alert")).to_contain_text("Tick the box to say you want to get our emails.")
    frame.get_by_label("Yes, I want Test Parent Carer Forum to email me", exact=False).check()
    frame.get_by_role("button", name="Join").click()
    expect(frame.get_by_role("heading", level=1)).to_have_text("Check your email")
    axe(page)
    assert page.context.cookies(sites.app.url) == []  # it never needed one

    run_tick_for_app(sites.app.app)
    confirm_url = link_to(smtp.wait_for(1)[0].message, "/confirm/")
    assert confirm_url.startswith(sites.app.url + "/confirm/")
    page.goto(confirm_url)
    page.get_by_role("button", name="Confirm my membership").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("subscribed")
    with sites.app.app.app_context():
        member = db.session.scalars(select(Member)).one()
        assert (member.email, member.status) == ("fran@example.org", MemberStatus.MEMBER)
        assert [g.name for g in member.groups] == ["Forum news"]


def test_a_website_not_listed_cannot_frame_the_form(embed_page: Page, sites: Sites):
    """R2: the CSP names only the listed website, and Chromium refuses to show the form in another site's frame."""
    page = embed_page
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text))
    response = page.request.get(sites.app.url + "/join/embed")
    assert f"frame-ancestors 'self' {sites.listed};" in response.headers["content-security-policy"]
    page.goto(sites.unlisted + "/")
    page.wait_for_load_state("load")
    frame = next(f for f in page.frames if f != page.main_frame)
    expect(frame.locator("form")).to_have_count(0)
    assert not frame.url.startswith(sites.app.url + "/join/embed") or frame.locator("h1").count() == 0
    assert any("frame-ancestors" in text for text in refused), refused

    page.goto(sites.listed + "/")  # the listed site shows it
    expect(page.frame_locator("iframe#join").get_by_role("button", name="Join")).to_be_visible()


def test_the_embed_page_on_its_own_is_accessible(embed_page: Page, sites: Sites, axe):
    """The embedded form opened directly (as the admin preview and a screen reader's 'open frame' do) is axe-clean,
    also with errors shown."""
    page = embed_page
    page.goto(sites.app.url + "/join/embed")
    axe(page)
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter your name.")
    axe(page)
