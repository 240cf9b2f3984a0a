"""An admin's own account security (issue 19): two-step login, the code page of a log-in, sessions, and the
owner's "two-step login for everyone" switch. Thin views: each change is one domain call in a transaction."""

from __future__ import annotations

import logging

import segno
from flask import flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_limiter.util import get_remote_address
from sqlalchemy import select

from mailer.admins import sessions as admin_sessions
from mailer.admins import two_step
from mailer.announcements.lifecycle import to_london
from mailer.errors import InvalidInput, NotPermitted
from mailer.extensions import db, limiter
from mailer.models import Admin, AdminRole, AdminSession
from mailer.transaction import transaction
from mailer.web.admin import bp
from mailer.web.admin.forms import ActionForm, LoginCodeForm, SecurityPolicyForm, TwoStepCodeForm
from mailer.web.auth import (
    PENDING_KEY,
    audit_action,
    begin_session,
    clear_pending,
    current_session_key,
    pending_admin,
)
from mailer.web.context import clock, current_settings
from mailer.web.libs import current_user

log = logging.getLogger(__name__)

# While two-step login is required and not yet set up, only these pages open (issue 19).
SET_UP_ENDPOINTS = frozenset({"admin.two_step", "admin.login", "admin.login_code", "admin.logout"})


def _code_limit() -> str:
    return current_settings().login_rate_limit_account


def _ip_limit() -> str:
    return current_settings().login_rate_limit_ip


def _pending_key() -> str:
    """Wrong codes count per browser's half-finished log-in (its admin) and IP address, like wrong passwords."""
    value = session.get(PENDING_KEY)
    admin_id = value.get("id") if isinstance(value, dict) else None
    return f"two-step:{get_remote_address()}:{admin_id}"


def _set_up_key() -> str:
    return f"two-step-set-up:{getattr(current_user, 'id', None)}"


def _code_failed(response: object) -> bool:
    return bool(g.get("code_failed"))


@bp.before_request
def require_two_step_set_up() -> ResponseReturnValue | None:
    """When an owner requires two-step login, an admin without it sets it up before anything else."""
    if request.endpoint in SET_UP_ENDPOINTS or request.endpoint is None or not current_user.is_authenticated:
        return None
    if two_step.needs_set_up(db.session(), current_user):
        flash("The forum requires two-step login for every admin. Set it up to carry on.")
        return redirect(url_for("admin.two_step"), 303 if request.method == "POST" else 302)
    return None


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
@limiter.limit(_code_limit, methods=["POST"], key_func=_pending_key, deduct_when=_code_failed)
def login_code() -> ResponseReturnValue:
    """The second page of a log-in with two-step login on: the password was right, now the code."""
    admin = pending_admin()
    if admin is None:
        clear_pending()
        flash("Log in again: it was too long since you gave your password.")
        return redirect(url_for("admin.login"), 303)
    form = LoginCodeForm()
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                used = two_step.check_second_step(db.session(), admin, form.code.data or "", clock=clock())
                begin_session(admin)
                audit_action(admin, "logged in with a recovery code" if used.method == "recovery" else "logged in")
        except InvalidInput as exc:
            g.code_failed = True
            form.code.errors = [str(exc)]
            log.warning("admin %d: wrong two-step code", admin.id)
            with transaction(db.session()):
                audit_action(admin, "failed log-in (wrong two-step code)")
        else:
            log.info("admin %d: logged in with %s", admin.id, "a recovery code" if used.method == "recovery" else
                     "a two-step code")
            if used.method == "recovery":
                flash(f"You used a recovery code. You have {used.recovery_codes_left} left: make new ones "
                      "on the two-step login page if you are running low.")
            return redirect(url_for("admin.dashboard"), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("admin/account/login_code.html", form=form), status


@bp.route("/account/two-step", methods=["GET", "POST"], endpoint="two_step")
@limiter.limit(_code_limit, methods=["POST"], key_func=_set_up_key, deduct_when=_code_failed)
def two_step_page() -> ResponseReturnValue:
    """Two-step login: set it up (QR code, the secret as text, then a code), or see that it is on."""
    admin = current_user
    form = TwoStepCodeForm()
    if two_step.is_on(admin):
        return render_template(
            "admin/account/two_step_on.html",
            off_form=TwoStepCodeForm(),
            codes_form=ActionForm(),
            codes_left=two_step.count_recovery_codes(db.session(), admin.id),
            required=two_step.get_policy(db.session()).require_two_step,
        )
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                codes = two_step.confirm_set_up(db.session(), admin, form.code.data or "", clock=clock())
        except InvalidInput as exc:
            g.code_failed = True
            form.code.errors = [str(exc)]
        else:
            log.info("admin %d: two-step login turned on", admin.id)
            return render_template("admin/account/recovery_codes.html", codes=codes, first_time=True)
    with transaction(db.session()):
        secret = two_step.start_set_up(admin)
    uri = two_step.provisioning_uri(admin, secret, issuer=current_settings().forum_name)
    qr_svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff", omitsize=False)
    status = 400 if form.is_submitted() else 200
    return render_template(
        "admin/account/two_step_set_up.html", form=form, qr_svg=qr_svg, secret=two_step.grouped(secret)
    ), status


@bp.post("/account/two-step/recovery-codes")
def two_step_recovery_codes() -> ResponseReturnValue:
    """Ten new recovery codes, replacing the old ones; shown this once."""
    form = ActionForm()
    if not form.validate_on_submit():
        raise InvalidInput("The form had expired. Go back and try again.")
    with transaction(db.session()):
        codes = two_step.make_recovery_codes(db.session(), current_user, clock=clock())
    log.info("admin %d: new recovery codes made", current_user.id)
    return render_template("admin/account/recovery_codes.html", codes=codes, first_time=False)


@bp.post("/account/two-step/off")
@limiter.limit(_code_limit, key_func=_set_up_key, deduct_when=_code_failed)
def two_step_off() -> ResponseReturnValue:
    """Turn two-step login off, after a current code (so a borrowed session cannot do it)."""
    form = TwoStepCodeForm()
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                two_step.turn_off(db.session(), current_user, form.code.data or "", clock=clock())
        except InvalidInput as exc:
            g.code_failed = True
            flash(str(exc))
        else:
            log.info("admin %d: two-step login turned off", current_user.id)
            flash("Two-step login is off.")
            return redirect(url_for("admin.two_step"), 303)
    else:
        flash("Enter the code from your authenticator app to turn two-step login off.")
    return redirect(url_for("admin.two_step"), 303)


@bp.get("/account/sessions")
def sessions() -> ResponseReturnValue:
    """Where the admin is logged in (device, last seen); an owner sees everyone's too."""
    now = clock().now()
    mine = admin_sessions.list_live_sessions(db.session(), now=now, admin_id=current_user.id)
    others: list[tuple[str, AdminSession]] = []
    if current_user.role is AdminRole.OWNER:
        emails = {a.id: a.email for a in db.session.scalars(select(Admin))}
        others = [
            (emails.get(row.admin_id, "?"), row)
            for row in admin_sessions.list_live_sessions(db.session(), now=now)
            if row.admin_id != current_user.id
        ]
    return render_template(
        "admin/account/sessions.html",
        mine=mine,
        others=others,
        current_key=current_session_key(),
        is_owner=current_user.role is AdminRole.OWNER,
        form=ActionForm(),
        max_age_days=admin_sessions.MAX_AGE.days,
        to_london=to_london,
    )


@bp.post("/account/sessions/end-others")
def sessions_end_others() -> ResponseReturnValue:
    """Log out of every other device; this one stays logged in."""
    form = ActionForm()
    if not form.validate_on_submit():
        raise InvalidInput("The form had expired. Go back and try again.")
    with transaction(db.session()):
        ended = admin_sessions.end_other_sessions(db.session(), current_user, current_session_key(), clock=clock())
    log.info("admin %d: ended %d other sessions", current_user.id, ended)
    flash("You are logged out everywhere else." if ended else "You were not logged in anywhere else.")
    return redirect(url_for("admin.sessions"), 303)


@bp.post("/account/sessions/<int:session_id>/end")
def sessions_end(session_id: int) -> ResponseReturnValue:
    """End one session: one of the admin's own, or (an owner) anyone's."""
    form = ActionForm()
    if not form.validate_on_submit():
        raise InvalidInput("The form had expired. Go back and try again.")
    with transaction(db.session()):
        row = admin_sessions.end_session(db.session(), current_user, session_id, clock=clock())
    if row is not None:
        log.info("admin %d: ended session %d of admin %d", current_user.id, row.id, row.admin_id)
    flash("That session has ended." if row is not None else "That session had already ended.")
    return redirect(url_for("admin.sessions"), 303)


@bp.route("/account/security", methods=["GET", "POST"])
def security_policy() -> ResponseReturnValue:
    """An owner's switch: two-step login required for every admin."""
    if current_user.role is not AdminRole.OWNER:
        raise NotPermitted("Only an owner can change the security settings.")
    policy = two_step.get_policy(db.session())
    form = SecurityPolicyForm(data={"require_two_step": policy.require_two_step})
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                two_step.set_require_two_step(
                    db.session(), current_user, bool(form.require_two_step.data), clock=clock()
                )
        except InvalidInput as exc:
            form.require_two_step.errors = [str(exc)]
        else:
            log.info("admin %d: two-step login required for everyone: %s", current_user.id,
                     bool(form.require_two_step.data))
            flash("Saved.")
            return redirect(url_for("admin.security_policy"), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("admin/account/security.html", form=form, own_two_step=two_step.is_on(current_user)), status
