"""One member at a time (V7): add a member, edit their name and groups, change their address.

Thin like members.py: read the form, call mailer.members.one_member in a transaction, respond."""

from __future__ import annotations

import logging

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from mailer.announcements.lifecycle import to_london
from mailer.errors import InvalidInput, NotPending, Suppressed
from mailer.extensions import db
from mailer.members import consent, one_member, rights
from mailer.members.membership import JoinDetails, list_groups
from mailer.models import ConsentMethod, Member, SocialMedia
from mailer.transaction import transaction
from mailer.web.admin import bp
from mailer.web.admin.forms import SEND_CONFIRMATION, MemberDetailsForm, NewMemberForm
from mailer.web.context import clock, current_settings, membership_policy
from mailer.web.libs import SelectChoice, current_user
from mailer.web.member.forms import ChangeAddressForm

log = logging.getLogger(__name__)


def _group_choices(form: MemberDetailsForm) -> None:
    form.groups.label.text = "Groups"
    form.groups.choices = [
        SelectChoice(g.id, g.name) for g in list_groups(db.session())  # type: ignore[misc]  # types-WTForms
    ]


def _new_member_form() -> NewMemberForm:
    form = NewMemberForm()
    _group_choices(form)
    forum_name = current_settings().forum_name
    wordings = consent.list_wordings(db.session())
    form.wording.choices = [
        SelectChoice(w.id, f"Version {w.version}: “{consent.wording_as_shown(w, forum_name)}”")  # type: ignore[misc]
        for w in wordings
    ]
    if wordings and form.wording.data is None:
        form.wording.data = wordings[0].id
    return form


@bp.route("/members/new", methods=["GET", "POST"])
def member_new() -> ResponseReturnValue:
    form = _new_member_form()
    if form.validate_on_submit():
        agreement = None
        if form.how.data != SEND_CONFIRMATION:
            if form.agreed_on.data is None:
                form.agreed_on.errors = ["Enter the date they agreed."]
            if form.wording.data is None:
                form.wording.errors = ["Choose the wording they were told."]
            if form.agreed_on.data is not None and form.wording.data is not None:
                agreement = one_member.Agreement(
                    method=ConsentMethod(form.how.data),
                    agreed_on=form.agreed_on.data,
                    wording_id=form.wording.data,
                    note=(form.note.data or "").strip(),
                )
        if not form.errors:
            details = JoinDetails(
                email=form.email.data or "",
                name=form.name.data or "",
                social_media=SocialMedia(form.social_media.data),
                group_ids=list(form.groups.data or []),
            )
            try:
                with transaction(db.session()):
                    member, outcome = one_member.add_member(
                        db.session(),
                        details,
                        current_user.id,
                        agreement=agreement,
                        policy=membership_policy(),
                        clock=clock(),
                        today=to_london(clock().now()).date(),
                    )
            except InvalidInput as exc:
                getattr(form, exc.field or "email").errors.append(str(exc))
            except Suppressed as exc:
                form.email.errors = [*form.email.errors, str(exc)]
            else:
                log.info("admin %d: added member %d (%s)", current_user.id, member.id, outcome.value)
                flash(_added_message(member, outcome))
                return redirect(url_for("admin.member", member_id=member.id), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("admin/members/new.html", form=form), status


def _added_message(member: Member, outcome: one_member.AddOutcome) -> str:
    if outcome is one_member.AddOutcome.ADDED:
        return f"{member.email} is a member now. A welcome email is on its way to them."
    if outcome is one_member.AddOutcome.CONFIRMATION_SENT:
        return (f"A confirmation email is on its way to {member.email}. They become a member when they press the "
                "button in it.")
    return (f"A confirmation email was sent to {member.email} recently, so no other was sent. They become a member "
            "when they press the button in it.")


@bp.route("/members/<int:member_id>/edit", methods=["GET", "POST"])
def member_edit(member_id: int) -> ResponseReturnValue:
    item = db.get_or_404(Member, member_id)
    data = None
    if request.method != "POST":
        data = {"name": item.name, "groups": [g.id for g in item.groups], "social_media": item.social_media.value}
    form = MemberDetailsForm(data=data)
    _group_choices(form)
    if form.validate_on_submit():
        preferences = rights.Preferences(
            name=form.name.data or "",
            social_media=SocialMedia(form.social_media.data),
            group_ids=list(form.groups.data or []),
        )
        try:
            with transaction(db.session()):
                changed = one_member.edit_member(db.session(), item, preferences, current_user.id, clock=clock())
        except InvalidInput as exc:
            getattr(form, exc.field or "name").errors.append(str(exc))
        else:
            if changed:
                log.info("admin %d: edited member %d", current_user.id, item.id)
            flash("Their details are saved." if changed else "Nothing was changed.")
            return redirect(url_for("admin.member", member_id=item.id), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("admin/members/edit.html", form=form, member=item), status


@bp.route("/members/<int:member_id>/change-address", methods=["GET", "POST"])
def member_change_address(member_id: int) -> ResponseReturnValue:
    item = db.get_or_404(Member, member_id)
    form = ChangeAddressForm()
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                outcome = one_member.request_address_change(
                    db.session(), item, form.email.data or "", admin_id=current_user.id,
                    policy=membership_policy(), clock=clock(),
                )
        except (InvalidInput, NotPending) as exc:
            form.email.errors = [*form.email.errors, str(exc)]
        else:
            message = _change_message(outcome)
            if outcome is one_member.ChangeOutcome.SENT:
                log.info("admin %d: asked for an address change for member %d", current_user.id, item.id)
                flash(message)
                return redirect(url_for("admin.member", member_id=item.id), 303)
            form.email.errors = [*form.email.errors, message]
    status = 400 if form.is_submitted() else 200
    return render_template("admin/members/change_address.html", form=form, member=item), status


def _change_message(outcome: one_member.ChangeOutcome) -> str:
    return {
        one_member.ChangeOutcome.SENT: (
            "A link is on its way to the new address. The address changes when they press it, and the old "
            "address is then told."
        ),
        one_member.ChangeOutcome.THROTTLED: (
            "A link to change their address was sent recently, so no other was sent. Try again later."
        ),
        one_member.ChangeOutcome.IN_USE: "That address is already on the list, so it cannot be used for them.",
        one_member.ChangeOutcome.SUPPRESSED: one_member.SUPPRESSED_MESSAGE,
    }[outcome]
