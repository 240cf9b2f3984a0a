"""Preferences, download and erasure. Every page here is reached by a secret link: no-store, no referrer."""

from __future__ import annotations

import json
import logging

from flask import Response, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from mailer.errors import InvalidInput, NotPending, TokenInvalid
from mailer.extensions import db, limiter
from mailer.mail.tokens import Purpose, make_token, read_token
from mailer.members import membership, one_member, rights
from mailer.models import ConsentMethod, Member, SocialMedia
from mailer.transaction import transaction
from mailer.web.context import clock, current_settings, evidence, membership_policy
from mailer.web.libs import SelectChoice
from mailer.web.member import bp
from mailer.web.member.forms import ChangeAddressForm, LostLinkForm, PreferencesForm
from mailer.web.public.forms import ButtonForm

log = logging.getLogger(__name__)


def _member(token: str) -> Member:
    link_key, version = read_token(current_settings().secret_key, Purpose.PREFERENCES, token, clock=clock())
    return membership.find_member_for_link(db.session(), link_key, version)


def _form(member: Member | None = None) -> PreferencesForm:
    data = None
    if member is not None:
        data = {"name": member.name, "groups": [g.id for g in member.groups], "social_media": member.social_media.value}
    form = PreferencesForm(data=data)
    form.groups.choices = [
        SelectChoice(g.id, g.name)  # type: ignore[misc]  # types-WTForms predates SelectChoice
        for g in membership.list_groups(db.session())
    ]
    return form


@bp.route("/preferences/<token>", methods=["GET", "POST"])
def preferences(token: str) -> ResponseReturnValue:
    member = _member(token)
    form = _form(None if _is_post() else member)
    saved = False
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                saved = rights.update_preferences(
                    db.session(),
                    member,
                    rights.Preferences(
                        name=form.name.data or "",
                        social_media=SocialMedia(form.social_media.data),
                        group_ids=list(form.groups.data or []),
                    ),
                    evidence(ConsentMethod.EMAIL_LINK),
                    clock=clock(),
                )
        except InvalidInput as exc:
            getattr(form, exc.field or "name").errors.append(str(exc))
        else:
            return render_template("member/preferences.html", form=_form(member), member=member, token=token,
                                   saved=True, changed=saved)
    status = 400 if form.is_submitted() else 200
    return render_template("member/preferences.html", form=form, member=member, token=token, saved=False), status


@bp.get("/preferences/<token>/data.json")
def download(token: str) -> ResponseReturnValue:
    member = _member(token)
    body = json.dumps(rights.export_member_data(db.session(), member), indent=2, ensure_ascii=False)
    response = Response(body, mimetype="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="my-forum-data.json"'
    return response


@bp.route("/preferences/<token>/erase", methods=["GET", "POST"])
def erase(token: str) -> ResponseReturnValue:
    member = _member(token)
    form = ButtonForm()
    if form.validate_on_submit():
        with transaction(db.session()):
            rights.erase_member(
                db.session(), member, suppression_key=membership_policy().suppression_key, clock=clock()
            )
        log.info("member erased at their request")
        return render_template("member/erased.html")
    return render_template("member/erase.html", form=form, member=member)


@bp.route("/preferences", methods=["GET", "POST"])
@limiter.limit(lambda: current_settings().join_rate_limit, methods=["POST"])
def lost_link() -> ResponseReturnValue:
    """A member who lost their link asks for a new one; the answer is the same for any address."""
    form = LostLinkForm()
    if form.validate_on_submit():
        with transaction(db.session()):
            membership.request_preferences_link(
                db.session(), form.email.data or "", policy=membership_policy(), clock=clock()
            )
        return redirect(url_for("member.lost_link_sent"), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("member/lost_link.html", form=form), status


@bp.get("/preferences/link-sent")
def lost_link_sent() -> ResponseReturnValue:
    return render_template("member/lost_link_sent.html")


@bp.route("/preferences/<token>/address", methods=["GET", "POST"])
@limiter.limit(lambda: current_settings().join_rate_limit, methods=["POST"])
def change_address(token: str) -> ResponseReturnValue:
    """A member asks for a new address (V7). The answer is the same whether or not the new address can be used
    (already on the list, or on the do-not-email list): nobody learns about another address here."""
    member = _member(token)
    form = ChangeAddressForm()
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                one_member.request_address_change(
                    db.session(), member, form.email.data or "", admin_id=None, policy=membership_policy(),
                    clock=clock(),
                )
        except (InvalidInput, NotPending) as exc:
            form.email.errors = [*form.email.errors, str(exc)]
        else:
            return render_template("member/change_address_sent.html", token=token)
    status = 400 if form.is_submitted() else 200
    return render_template("member/change_address.html", form=form, member=member, token=token), status


def _address_change_key(token: str) -> str:
    key, version = read_token(
        current_settings().secret_key, Purpose.ADDRESS_CHANGE, token, clock=clock(),
        max_age_seconds=int(current_settings().confirm_max_age.total_seconds()),
    )
    if version != 1:
        raise TokenInvalid()
    return key


@bp.get("/change-address/<token>")
def confirm_address_page(token: str) -> ResponseReturnValue:
    """Opening the link (a mail scanner may) changes nothing: only the button's POST does (like J2)."""
    change = one_member.find_address_change(
        db.session(), _address_change_key(token), max_age=current_settings().confirm_max_age, now=clock().now()
    )
    return render_template("member/confirm_address.html", form=ButtonForm(), change=change)


@bp.post("/change-address/<token>")
def confirm_address(token: str) -> ResponseReturnValue:
    with transaction(db.session()):
        member, newly = one_member.confirm_address_change(
            db.session(),
            _address_change_key(token),
            evidence(ConsentMethod.EMAIL_LINK),
            policy=membership_policy(),
            max_age=current_settings().confirm_max_age,
            clock=clock(),
        )
    preferences_token = make_token(
        current_settings().secret_key, Purpose.PREFERENCES, member.link_key, member.token_version, clock=clock()
    )
    return render_template(
        "member/address_changed.html", member=member, newly=newly, preferences_token=preferences_token
    )


def _is_post() -> bool:
    from flask import request

    return request.method == "POST"
