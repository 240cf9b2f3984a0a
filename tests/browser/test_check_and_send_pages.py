"""Issue 18 in headless Chromium at phone and desktop width, each page checked with axe-core: Send now leads to
the check page with the count, confirming starts the undo window, "Stop, don't send" within it sends nothing;
confirming again, the page goes from the countdown to "Starting…" to the progress bar and "Sent" without a reload."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from werkzeug.serving import BaseWSGIServer, make_server

from mailer.worker.runner import run_tick_for_app
from support.factories import add_member

from .admin import log_in
from .conftest import LiveServer

pytestmark = pytest.mark.browser

LETTER = (
    "# Inspectors are coming back\n\nDear {{ name }},\n\nThe inspectors return in May. Tell us what has changed "
    "for your family.\n\nBest wishes,\n\nSam, for the forum"
)


@pytest.fixture
def live_server(make_app: Callable[..., Flask]) -> Iterator[LiveServer]:
    """The shared live server, with the one-minute undo window the other tests turn off."""
    target: dict[str, Flask] = {}

    def dispatch(environ: dict[str, Any], start_response: Any) -> Any:
        return target["app"](environ, start_response)

    server: BaseWSGIServer = make_server("127.0.0.1", 0, dispatch, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    target["app"] = make_app(MAILER_BASE_URL=url, MAILER_UNDO_SECONDS=60)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield LiveServer(app=target["app"], url=url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_send_now_check_stop_then_send_and_watch_it_finish(page: Page, live_server, clock, smtp, axe):
    """V1 journey: Send now -> check page ("Send to 2 members") -> undo window -> Stop, don't send (nothing arrives)
    -> Send now again -> the countdown ends, "Starting…", a worker tick, the progress bar reaches Sent, no reload."""
    with live_server.app.app_context():
        for i in range(2):
            add_member(f"parent{i}@example.org", clock=clock, groups=[1])
    log_in(page, live_server, clock)
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="New announcement").click()
    page.get_by_label("Subject").fill("Inspectors are coming back")
    page.get_by_label("Message").fill(LETTER)
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Inspectors are coming back")

    page.get_by_role("link", name="Send now").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check before you send")
    expect(page.locator("#check-count")).to_have_text("2")
    expect(page.get_by_text("All members", exact=True)).to_be_visible()
    axe(page)
    page.get_by_role("button", name="Send to 2 members").click()
    expect(page.locator("#waiting")).to_contain_text("It will start sending at 09:01:00")
    expect(page.locator("#countdown")).to_contain_text(re.compile(r"in \d+ seconds"))
    axe(page)
    page.get_by_role("button", name="Stop, don't send").click()
    expect(page.get_by_role("status")).to_contain_text("nothing was sent")
    expect(page.locator("#state")).to_have_text("Draft")
    clock.advance(seconds=120)
    run_tick_for_app(live_server.app)
    assert smtp.received == []

    page.get_by_role("link", name="Send now").click()
    page.get_by_role("button", name="Send to 2 members").click()
    expect(page.locator("#state")).to_have_text("Scheduled")
    page.evaluate("window.notReloaded = true")
    clock.advance(seconds=60)  # the window ends by the server's clock; the page notices on its next look
    expect(page.locator("#starting")).to_have_text("Starting…", timeout=10_000)
    expect(page.locator("#state")).to_have_text("Starting")
    tick = threading.Thread(target=run_tick_for_app, args=(live_server.app,))
    tick.start()
    expect(page.locator("#state")).to_have_text("Sent", timeout=15_000)
    tick.join(30)
    assert len(smtp.wait_for(2)) == 2
    expect(page.locator("#progress-bar")).to_be_visible()
    expect(page.locator("#progress-details")).to_contain_text("2 sent, 0 waiting, 0 failed")
    expect(page.locator("#stop-form")).to_be_hidden()
    assert page.evaluate("window.notReloaded") is True
    axe(page)
