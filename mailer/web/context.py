"""What views hand to the domain, read from the app and the request in one place."""

from __future__ import annotations

from flask import current_app, request

from mailer.clock import Clock
from mailer.mail.announcement import AnnouncementMail
from mailer.members.consent import Evidence
from mailer.members.membership import MembershipPolicy
from mailer.models import ConsentMethod
from mailer.settings import Settings, settings_of


def clock() -> Clock:
    app_clock: Clock = current_app.extensions["mailer.clock"]  # create_app puts the app's Clock there
    return app_clock


def current_settings() -> Settings:
    """The app's Settings, parsed once by create_app: views read these, never app.config."""
    return settings_of(current_app)


def membership_policy() -> MembershipPolicy:
    return current_settings().membership_policy


def evidence(method: ConsentMethod) -> Evidence:
    return Evidence(method=method, ip_address=request.remote_addr, user_agent=request.user_agent.string or None)


def confirm_max_age_seconds() -> int:
    return int(current_settings().confirm_max_age.total_seconds())


def announcement_mail() -> AnnouncementMail:
    return AnnouncementMail.from_settings(current_app.jinja_env, current_settings(), clock=clock())
