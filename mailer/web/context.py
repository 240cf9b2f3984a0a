"""What views hand to the domain, read from the app and the request in one place."""

from __future__ import annotations

import logging

from flask import current_app, g, request
from sqlalchemy.exc import SQLAlchemyError

from mailer.clock import Clock
from mailer.extensions import db
from mailer.mail.announcement import AnnouncementMail
from mailer.members.consent import Evidence
from mailer.members.forum_details import ForumDetails, forum_details
from mailer.members.membership import MembershipPolicy
from mailer.models import ConsentMethod
from mailer.settings import Settings, settings_of


def clock() -> Clock:
    app_clock: Clock = current_app.extensions["mailer.clock"]  # create_app puts the app's Clock there
    return app_clock


def current_settings() -> Settings:
    """The app's Settings, parsed once by create_app: views read these, never app.config."""
    return settings_of(current_app)


def current_forum_details() -> ForumDetails:
    """The forum's details as owners set them on /admin/settings (V6), read once per request."""
    details: ForumDetails | None = g.get("mailer_forum_details")
    if details is None:
        details = forum_details(db.session(), current_settings())
        g.mailer_forum_details = details
    return details


def forum_settings() -> Settings:
    """Settings with the forum's details laid over the configured ones: what pages show and the mail
    built by the web app says. An error page must still render when the database cannot be read (its
    session may be the one that failed): it then shows the configured details."""
    try:
        return current_forum_details().overlay(current_settings())
    except SQLAlchemyError as exc:
        logging.getLogger(__name__).warning("forum details: could not read them: %s", type(exc).__name__)
        return current_settings()


def membership_policy() -> MembershipPolicy:
    return forum_settings().membership_policy


def evidence(method: ConsentMethod) -> Evidence:
    return Evidence(method=method, ip_address=request.remote_addr, user_agent=request.user_agent.string or None)


def confirm_max_age_seconds() -> int:
    return int(current_settings().confirm_max_age.total_seconds())


def announcement_mail() -> AnnouncementMail:
    return AnnouncementMail.from_settings(current_app.jinja_env, forum_settings(), clock=clock())
