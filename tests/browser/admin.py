"""Logging in as an admin through the real login form, for the browser tests."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from mailer.admins.accounts import create_admin
from mailer.extensions import db
from support.factories import ADMIN_EMAIL, ADMIN_PASSWORD


def log_in(page: Page, live_server: Any, clock: Any) -> None:
    with live_server.app.app_context():
        create_admin(db.session, ADMIN_EMAIL, ADMIN_PASSWORD, clock=clock)
        db.session.commit()
    page.goto("/admin/login")
    page.get_by_label("Email address", exact=True).fill(ADMIN_EMAIL)
    page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
