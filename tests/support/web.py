"""Drive the app through its pages as a browser would: fetch the form, keep the CSRF token."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1) or match.group(2)


def path_of(url: str) -> str:
    return urlsplit(url).path


def join(client: Any, *, email: str, name: str = "Zoe Parent", groups: list[int] | None = None,
         social_media: str = "no", consent: bool = True, environ_base: dict[str, str] | None = None,
         **extra: str) -> Any:
    """Post the join form the way a browser would: GET it first for the CSRF token."""
    request_args = {"environ_base": environ_base} if environ_base else {}
    page = client.get("/join", **request_args)
    data: dict[str, Any] = {
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        "name": name,
        "email": email,
        "social_media": social_media,
        "groups": [str(g) for g in (groups or [1])],
        **extra,
    }
    if consent:
        data["consent"] = "y"
    return client.post("/join", data=data, **request_args)


def post_button(client: Any, path: str) -> Any:
    """GET the page with one button, then POST its form with its CSRF token."""
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    return client.post(path, data={"csrf_token": csrf_token(page.get_data(as_text=True))})


def join_and_confirm(app: Any, client: Any, smtp: Any, email: str, **join_args: Any) -> Any:
    """Join through the form, confirm through the emailed link; returns the welcome message."""
    from mailer.worker.runner import run_tick_for_app
    from support.mail import link_to

    before = len(smtp.received)
    join(client, email=email, **join_args)
    run_tick_for_app(app)
    confirmation = smtp.wait_for(before + 1)[before].message
    response = post_button(client, path_of(link_to(confirmation, "/confirm/")))
    assert response.status_code == 200, response.status_code
    run_tick_for_app(app)
    return smtp.wait_for(before + 2)[before + 1].message
