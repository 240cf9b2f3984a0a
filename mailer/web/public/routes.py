"""Views stay thin: parse, call one domain function inside a transaction, respond."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from wtforms import ValidationError

from mailer.errors import InvalidInput
from mailer.extensions import db, limiter
from mailer.health import find_sending_health
from mailer.mail.tokens import Purpose, make_token, read_token
from mailer.members import consent, membership
from mailer.members.addresses import address_hash
from mailer.models import ConsentMethod, Member, SocialMedia
from mailer.transaction import transaction
from mailer.web.context import (
    clock,
    confirm_max_age_seconds,
    current_settings,
    evidence,
    forum_settings,
    membership_policy,
)
from mailer.web.libs import CSRFError, SelectChoice, csrf_exempt, validate_csrf
from mailer.web.public import bp
from mailer.web.public.forms import ButtonForm, JoinForm

log = logging.getLogger(__name__)


def _join_rate_limit() -> str:
    return current_settings().join_rate_limit


def _join_address_rate_limit() -> str:
    return current_settings().join_rate_limit_per_address


def _join_address_key() -> str:
    """The address as typed, folded: one person hammering the form from many IPs is still one key.
    Kept as a keyed hash, so the rate-limit table (in the database) names nobody."""
    typed = " ".join((request.form.get("email") or "").split()).lower()[:320]
    return "join-address:" + address_hash(membership_policy().suppression_key, typed)


# The join form's limits, shared by every page that takes a join (/join and /join/embed count together).
join_limit = limiter.shared_limit(_join_rate_limit, scope="join", methods=["POST"])
join_address_limit = limiter.shared_limit(
    _join_address_rate_limit, scope="join-address", methods=["POST"], key_func=_join_address_key
)


@bp.get("/")
def home() -> ResponseReturnValue:
    return render_template("public/home.html")


@bp.get("/privacy")
def privacy() -> ResponseReturnValue:
    wording = consent.current_wording(db.session())
    return render_template("public/privacy.html", wording=wording)


def prepare_join_form(form: JoinForm) -> str:
    """Give a join form its groups; returns the consent wording as the form shows it (J1)."""
    form.groups.choices = [
        SelectChoice(g.id, g.name)  # type: ignore[misc]  # types-WTForms predates SelectChoice
        for g in membership.list_groups(db.session())
    ]
    return consent.wording_as_shown(consent.current_wording(db.session()), forum_settings().forum_name)


def accept_join(form: JoinForm) -> bool:
    """Check a posted join form and queue it (J1): True when the page should say 'check your email' (also for a
    filled-in honeypot, so a bot learns nothing), False with the form's errors set."""
    if not form.validate_on_submit():
        return False
    if form.website.data:
        log.info("join: honeypot filled in; answered like a success, nothing sent")
        return True
    details = membership.JoinDetails(
        email=form.email.data or "",
        name=form.name.data or "",
        social_media=SocialMedia(form.social_media.data),
        group_ids=list(form.groups.data or []),
    )
    try:
        with transaction(db.session()):
            membership.queue_join(db.session(), details, evidence(ConsentMethod.FORM), clock=clock())
    except InvalidInput as exc:
        getattr(form, exc.field or "email").errors.append(str(exc))
        return False
    return True


@bp.route("/join", methods=["GET", "POST"])
@join_limit
@join_address_limit
def join() -> ResponseReturnValue:
    form = JoinForm()
    wording_text = prepare_join_form(form)
    if accept_join(form):
        return redirect(url_for(".join_done"), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("public/join.html", form=form, wording_text=wording_text), status


@bp.get("/join/check-your-email")
def join_done() -> ResponseReturnValue:
    return render_template("public/join_done.html")


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> ResponseReturnValue:
    link_key, version = _read(Purpose.CONFIRM, token)
    member = membership.find_member_for_link(db.session(), link_key, version)
    return render_template("public/confirm.html", form=ButtonForm(), member=member, token=token)


@bp.post("/confirm/<token>")
def confirm(token: str) -> ResponseReturnValue:
    link_key, version = _read(Purpose.CONFIRM, token)
    with transaction(db.session()):
        member, newly = membership.confirm_membership(
            db.session(),
            link_key,
            version,
            evidence(ConsentMethod.EMAIL_LINK),
            policy=membership_policy(),
            clock=clock(),
        )
    preferences_url = _preferences_url(member, member.token_version)  # this link just proved the address is theirs
    return render_template("public/confirmed.html", newly=newly, preferences_url=preferences_url)


@bp.post("/confirm/<token>/new-link")
@limiter.limit(_join_rate_limit)
def confirm_new_link(token: str) -> ResponseReturnValue:
    """An expired confirmation link can ask for a fresh one; the signature must still be ours."""
    # No age limit here: an old link may ask for a new one, but the signature must be ours.
    link_key, version = read_token(current_settings().secret_key, Purpose.CONFIRM, token, clock=clock())
    with transaction(db.session()):
        membership.resend_confirmation(db.session(), link_key, version, policy=membership_policy(), clock=clock())
    return render_template("public/join_done.html", resent=True)


@bp.route("/unsubscribe/<token>", methods=["GET"])
def unsubscribe_page(token: str) -> ResponseReturnValue:
    """Every unsubscribe link ever sent works (J4); one of an erased member says they are not on the list."""
    link_key, version = _read(Purpose.UNSUBSCRIBE, token)
    member = membership.find_member_to_unsubscribe(db.session(), link_key)
    if member is None:
        return render_template("public/not_on_list.html"), 200
    return render_template(
        "public/unsubscribe.html", form=ButtonForm(), member=member, preferences_url=_preferences_url(member, version)
    )


@bp.post("/unsubscribe/<token>")
@csrf_exempt
def unsubscribe(token: str) -> ResponseReturnValue:
    """The browser form (with a CSRF token) and RFC 8058 one-click (no cookie, no token) both land here."""
    one_click = _is_one_click()
    if not one_click:
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError:
            _csrf_failed()
    link_key, _ = _read(Purpose.UNSUBSCRIBE, token)
    method = ConsentMethod.ONE_CLICK if one_click else ConsentMethod.EMAIL_LINK
    with transaction(db.session()):
        member, _ = membership.withdraw_consent(db.session(), link_key, evidence(method), clock=clock())
    if member is None:
        return render_template("public/not_on_list.html"), 200
    return render_template("public/unsubscribed.html"), 200


@bp.get("/healthz")
@limiter.exempt
def healthz() -> ResponseReturnValue:
    """200 while the database answers, 503 when not (the fixed contract); the body adds what a
    monitor alerts on: the workers' last tick and the outbox backlog (two small indexed queries)."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        db.session.rollback()
        log.warning("healthz: database did not answer")
        return jsonify(status="unavailable", database="unavailable"), 503
    now = clock().now()
    recent = timedelta(seconds=max(60.0, 5 * current_settings().tick_seconds))
    try:
        sending = find_sending_health(db.session(), now=now, recent=recent).as_json(now)
    except Exception:
        db.session.rollback()
        log.warning("healthz: could not read the worker heartbeat or the outbox")
        sending = {"worker": None, "outbox": None}
    return jsonify(status="ok", database="ok", **sending)


ONE_CLICK_BODY = "List-Unsubscribe=One-Click"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _is_one_click() -> bool:
    """RFC 8058's List-Unsubscribe=One-Click, read forgivingly: form-encoded or multipart/form-data, with or
    without trailing white space such as a CRLF; or a short body that is the token alone, whatever its type."""
    value = request.form.get("List-Unsubscribe")
    if value is not None:
        return value.strip() == "One-Click"
    length = request.content_length
    if request.mimetype in _FORM_TYPES or length is None or length > 4 * len(ONE_CLICK_BODY):
        return False
    return request.get_data(as_text=True).strip() == ONE_CLICK_BODY


def _preferences_url(member: Member | None, version: int) -> str | None:
    """The member's preferences link (R3), only for a link of their current version: preferences links show
    data and stay revocable, so an older link (which still unsubscribes, J4) gets "get a new link" instead."""
    if member is None or member.token_version != version:
        return None
    token = make_token(current_settings().secret_key, Purpose.PREFERENCES, member.link_key, version, clock=clock())
    return url_for("member.preferences", token=token)


def _read(purpose: Purpose, token: str) -> tuple[str, int]:
    max_age = confirm_max_age_seconds() if purpose is Purpose.CONFIRM else None
    return read_token(
        current_settings().secret_key, purpose, token, clock=clock(), max_age_seconds=max_age
    )


def _csrf_failed() -> None:
    raise CSRFError("The form was missing its security token.")
