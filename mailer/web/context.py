"""What views hand to the domain, read from the app and the request in one place."""

from __future__ import annotations


from flask import current_app, request

from ..announcement_mail import AnnouncementMail
from ..clock import Clock
from ..consent import Evidence
from ..membership import MembershipPolicy
from ..models import ConsentMethod


def clock() -> Clock:
    return current_app.extensions["mailer.clock"]


def membership_policy() -> MembershipPolicy:
    return MembershipPolicy.from_config(current_app.config)


def evidence(method: ConsentMethod) -> Evidence:
    return Evidence(method=method, ip_address=request.remote_addr, user_agent=request.user_agent.string or None)


def confirm_max_age_seconds() -> int:
    return int(float(current_app.config["MAILER_CONFIRM_MAX_AGE_DAYS"]) * 86400)


def announcement_mail() -> AnnouncementMail:
    return AnnouncementMail.from_config(current_app.jinja_env, current_app.config, clock=clock())
