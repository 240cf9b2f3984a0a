"""Admin accounts (V4, issue 19): owners invite, re-role and remove admins at /admin/admins; every admin changes
their own password and address at /admin/account; "Forgot your password?" sends a reset link. Thin views: each
change is one domain call (mailer.admins) in a transaction; the links emailed are opened here."""

from __future__ import annotations

import logging

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from mailer.admins import invitations, self_service, team
from mailer.announcements.lifecycle import to_london
from mailer.errors import InvalidInput
from mailer.extensions import db, limiter
from mailer.members.addresses import address_hash
from mailer.models import Admin, AdminRole
from mailer.transaction import transaction
from mailer.web.admin import bp
from mailer.web.admin.forms import (
    ActionForm,
    ChangeEmailForm,
    ChangePasswordForm,
    ForgotPasswordForm,
    InviteAdminForm,
    NewPasswordForm,
    RoleForm,
)
from mailer.web.auth import audit_action, begin_session
from mailer.web.context import clock, current_settings, membership_policy
from mailer.web.libs import FlaskForm, current_user, logout_user

log = logging.getLogger(__name__)

def _field_error(form: FlaskForm, exc: InvalidInput) -> None:
    field = getattr(form, exc.field or "", None)
    if field is None:
        field = next(iter(form))
    field.errors = [*field.errors, str(exc)]


def _secret_key() -> str:
    return current_settings().secret_key


# --- the admins page (owners) ------------------------------------------------------------------------------


@bp.get("/admins")
def admins() -> ResponseReturnValue:
    return _admins_page(InviteAdminForm(formdata=None))


def _admins_page(invite_form: InviteAdminForm) -> str:
    return render_template(
        "admin/admins/index.html",
        admins=team.list_admins(db.session()),
        invitations=invitations.list_pending_invitations(db.session(), clock=clock()),
        invite_form=invite_form,
        action_form=ActionForm(),
        role_words=team.ROLE_WORDS,
        hours=int(invitations.INVITATION_LIFETIME.total_seconds() // 3600),
        to_london=to_london,
    )


@bp.post("/admins/invite")
def admins_invite() -> ResponseReturnValue:
    form = InviteAdminForm()
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                invitation = invitations.invite_admin(
                    db.session(), form.email.data or "", AdminRole(form.role.data),
                    invited_by_id=current_user.id, clock=clock(),
                )
                log.info("admin %d: invited an admin (invitation %d)", current_user.id, invitation.id)
        except InvalidInput as exc:
            _field_error(form, exc)
        else:
            flash(f"Invitation sent to {invitation.email}. The link works for "
                  f"{int(invitations.INVITATION_LIFETIME.total_seconds() // 3600)} hours.")
            return redirect(url_for("admin.admins"), 303)
    return _admins_page(form), 400


@bp.post("/admins/invitations/<int:invitation_id>/resend")
def admins_resend_invitation(invitation_id: int) -> ResponseReturnValue:
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    with transaction(db.session()):
        invitation = invitations.resend_invitation(db.session(), invitation_id, clock=clock())
        log.info("admin %d: sent invitation %d again", current_user.id, invitation.id)
    flash(f"Invitation sent again to {invitation.email}. The earlier link no longer works.")
    return redirect(url_for("admin.admins"), 303)


@bp.route("/admins/invitations/<int:invitation_id>/withdraw", methods=["GET", "POST"])
def admins_withdraw_invitation(invitation_id: int) -> ResponseReturnValue:
    pending = {i.id: i for i in invitations.list_pending_invitations(db.session(), clock=clock())}
    if invitation_id not in pending:
        abort(404)
    form = ActionForm()
    if form.validate_on_submit():
        with transaction(db.session()):
            invitation = invitations.withdraw_invitation(db.session(), invitation_id, clock=clock())
            log.info("admin %d: withdrew invitation %d", current_user.id, invitation.id)
        flash(f"Invitation to {invitation.email} withdrawn. Its link no longer works.")
        return redirect(url_for("admin.admins"), 303)
    return render_template("admin/admins/withdraw.html", invitation=pending[invitation_id], form=form)


@bp.route("/admins/<int:admin_id>/role", methods=["GET", "POST"])
def admins_change_role(admin_id: int) -> ResponseReturnValue:
    admin = db.get_or_404(Admin, admin_id)
    form = RoleForm(data={"role": admin.role.value})
    if form.validate_on_submit():
        role = AdminRole(form.role.data)
        with transaction(db.session()):
            team.change_role(db.session(), admin_id, role)
            log.info("admin %d: gave admin %d the role %s", current_user.id, admin_id, role.value)
        flash(f"{admin.email} is now {team.ROLE_WORDS[role].lower()}. This applies from their next page.")
        if admin_id == current_user.id and role is not AdminRole.OWNER:
            return redirect(url_for("admin.dashboard"), 303)
        return redirect(url_for("admin.admins"), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("admin/admins/role.html", admin=admin, form=form, role_words=team.ROLE_WORDS), status


@bp.route("/admins/<int:admin_id>/remove", methods=["GET", "POST"])
def admins_remove(admin_id: int) -> ResponseReturnValue:
    admin = db.get_or_404(Admin, admin_id)
    form = ActionForm()
    if form.validate_on_submit():
        myself = admin_id == current_user.id
        actor = current_user.id
        with transaction(db.session()):
            email = team.remove_admin(db.session(), admin_id)
            log.info("admin %d: removed admin %d", actor, admin_id)
        if myself:
            logout_user()
            flash("You have removed your own admin account.")
            return redirect(url_for("admin.login"), 303)
        flash(f"{email} is no longer an admin. Any page they had open now asks them to log in.")
        return redirect(url_for("admin.admins"), 303)
    return render_template(
        "admin/admins/remove.html", admin=admin, form=form, myself=admin_id == current_user.id,
        role_words=team.ROLE_WORDS,
    )


# --- your own account (every admin) ------------------------------------------------------------------------


@bp.get("/account")
def account() -> ResponseReturnValue:
    return render_template("admin/admins/account.html", admin=current_user, role_words=team.ROLE_WORDS)


@bp.route("/account/password", methods=["GET", "POST"])
def account_password() -> ResponseReturnValue:
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                admin = self_service.change_password(
                    db.session(), current_user.id, form.current_password.data or "", form.password.data or "",
                    clock=clock(),
                )
                # The version went up, so every session has ended: this browser gets a new one.
                begin_session(admin)
        except InvalidInput as exc:
            _field_error(form, exc)
        else:
            log.info("admin %d: changed their password", admin.id)
            flash("Your password has been changed. You have been logged out everywhere else.")
            return redirect(url_for("admin.account"), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("admin/admins/password.html", form=form), status


@bp.route("/account/email", methods=["GET", "POST"])
def account_email() -> ResponseReturnValue:
    form = ChangeEmailForm()
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                new = self_service.request_email_change(
                    db.session(), current_user.id, form.email.data or "", clock=clock()
                )
        except InvalidInput as exc:
            _field_error(form, exc)
        else:
            log.info("admin %d: asked to change their email address", current_user.id)
            flash(f"We have sent a link to {new}. Your address changes when you follow it.")
            return redirect(url_for("admin.account"), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("admin/admins/email.html", form=form), status


@bp.route("/confirm-email/<token>", methods=["GET", "POST"])
def confirm_email(token: str) -> ResponseReturnValue:
    """GET shows a button (mail scanners open links); the POST changes the address."""
    form = ActionForm()
    if form.validate_on_submit():
        with transaction(db.session()):
            admin = self_service.confirm_email_change(db.session(), _secret_key(), token, clock=clock())
            audit_action(admin, "email address changed")
            log.info("admin %d: confirmed a new email address", admin.id)
        return render_template("admin/admins/email_confirmed.html", email=admin.email)
    new_email = self_service.check_email_link(db.session(), _secret_key(), token, clock=clock())
    return render_template("admin/admins/confirm_email.html", form=form, new_email=new_email)


# --- links for someone not logged in -----------------------------------------------------------------------


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token: str) -> ResponseReturnValue:
    invitation = invitations.open_invitation(db.session(), _secret_key(), token, clock=clock())
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                admin = invitations.accept_invitation(
                    db.session(), _secret_key(), token, form.password.data or "", clock=clock()
                )
                audit_action(admin, "invitation accepted")
        except InvalidInput as exc:
            _field_error(form, exc)
        else:
            log.info("admin %d: accepted an invitation", admin.id)
            flash("Your admin account is ready. Log in with your email address and new password.")
            return redirect(url_for("admin.login"), 303)
    status = 400 if form.is_submitted() else 200
    return render_template(
        "admin/admins/accept.html", form=form, email=invitation.email, role=team.ROLE_WORDS[invitation.role],
        role_description=team.ROLE_DESCRIPTIONS[invitation.role],
    ), status


def _reset_limit_ip() -> str:
    return current_settings().reset_rate_limit_ip


def _reset_limit_address() -> str:
    return current_settings().reset_rate_limit_address


def _reset_address_key() -> str:
    """Reset mails count per address typed, from anywhere: nobody can flood an admin's inbox. A keyed hash, so
    the table names nobody."""
    typed = (request.form.get("email") or "").strip().lower()[:320]
    return f"reset:{address_hash(membership_policy().suppression_key, typed)}"


@bp.route("/forgot-password", methods=["GET", "POST"])
@limiter.limit(_reset_limit_ip, methods=["POST"])
@limiter.limit(_reset_limit_address, methods=["POST"], key_func=_reset_address_key)
def forgot_password() -> ResponseReturnValue:
    """The same answer whether or not the address is an admin's (V4)."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        with transaction(db.session()):
            self_service.request_password_reset(db.session(), form.email.data or "", clock=clock())
        return redirect(url_for("admin.forgot_password_sent"), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("admin/admins/forgot.html", form=form), status


@bp.get("/forgot-password/sent")
def forgot_password_sent() -> ResponseReturnValue:
    hours = int(self_service.RESET_LIFETIME.total_seconds() // 3600)
    return render_template("admin/admins/forgot_sent.html", hours=hours)


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> ResponseReturnValue:
    self_service.check_reset_link(db.session(), _secret_key(), token, clock=clock())
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                admin = self_service.reset_password(
                    db.session(), _secret_key(), token, form.password.data or "", clock=clock()
                )
                audit_action(admin, "password reset by email")
        except InvalidInput as exc:
            _field_error(form, exc)
        else:
            log.info("admin %d: reset their password by email", admin.id)
            if current_user.is_authenticated:
                logout_user()
            flash("Your password has been changed, and you have been logged out everywhere. Log in with it now.")
            return redirect(url_for("admin.login"), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("admin/admins/reset.html", form=form), status
