"""Browser fixtures: the app on a live loopback server, Debian's Chromium through pytest-playwright, axe checks.

Every browser test runs at a phone and a desktop viewport, on SQLite only (the database
backends are covered by the other tests; here we test pages)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from conftest import skip_or_fail  # tests/conftest.py: this folder is a package, so the name is not shadowed
from flask import Flask
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from werkzeug.serving import BaseWSGIServer, make_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

# WCAG 2.0-2.2 level A and AA, plus axe's best practices (landmarks, one h1, ...).
AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}

VIEWPORTS = {
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
    "desktop": {"viewport": {"width": 1280, "height": 900}},
}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium, not Playwright's download (its CDN is unreachable here; STACK.md 6)."""
    if not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture
def database_uri(sqlite_uri: str) -> str:
    """Pages do not depend on the backend: browser tests run on SQLite only, to stay fast."""
    return sqlite_uri


@dataclass
class LiveServer:
    app: Flask
    url: str


@pytest.fixture
def live_server(make_app: Callable[..., Flask]) -> Iterator[LiveServer]:
    """The app served on a free loopback port; links in its emails point back at it."""
    target: dict[str, Flask] = {}

    def dispatch(environ: dict[str, Any], start_response: Any) -> Any:
        return target["app"](environ, start_response)

    # Bind first to learn the port, then build the app whose MAILER_BASE_URL is that address.
    server: BaseWSGIServer = make_server("127.0.0.1", 0, dispatch, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    target["app"] = make_app(MAILER_BASE_URL=url)
    # A short poll interval: shutdown() waits for it, once per test.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="live-server", daemon=True
    )
    thread.start()
    try:
        yield LiveServer(app=target["app"], url=url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(params=list(VIEWPORTS), ids=list(VIEWPORTS))
def viewport_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def context(new_context: Callable[..., Any], live_server: LiveServer, viewport_name: str) -> Any:
    """pytest-playwright's context, at this test's viewport, with relative URLs going to the live server."""
    return new_context(base_url=live_server.url, **VIEWPORTS[viewport_name])


def assert_accessible(page: Any) -> None:
    """axe-core finds no WCAG 2.2 A/AA or best-practice violation on the page as it is now, once it has loaded
    (after a click that navigates, the new page's stylesheet may not be applied yet on a busy machine: target
    sizes would then be measured unstyled). A page whose frames keep loading (a PDF preview) is checked after 10 s."""
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_load_state("load", timeout=10_000)
    results = Axe().run(page, options=AXE_OPTIONS)
    assert results.violations_count == 0, f"{page.url}\n{results.generate_report()}"


@pytest.fixture
def axe() -> Callable[[Any], None]:
    return assert_accessible
