"""The forum's details page (V6, issue 20): owners set the forum's name, contact address, privacy notice link,
footer line and the undo window. Stored by mailer.members.forum_details; pages show a change on the next
request and mail from the worker's next tick."""

from __future__ import annotations

import logging

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from mailer.errors import InvalidInput
from mailer.extensions import db
from mailer.members.forum_details import MAX_UNDO_SECONDS, DetailsInput, save_forum_details
from mailer.transaction import transaction
from mailer.web.admin import bp
from mailer.web.admin.forms import ForumSettingsForm
from mailer.web.context import clock, current_forum_details, current_settings

log = logging.getLogger(__name__)


@bp.route("/settings", methods=["GET", "POST"])
def forum_settings() -> ResponseReturnValue:
    details = current_forum_details()
    form = ForumSettingsForm(
        data={
            "forum_name": details.forum_name,
            "contact_address": details.contact_address,
            "privacy_notice_url": details.privacy_notice_url,
            "footer_line": details.footer_line,
            "undo_seconds": str(details.undo_seconds),
        }
    )
    if form.validate_on_submit():
        wanted = DetailsInput(
            forum_name=form.forum_name.data or "",
            contact_address=form.contact_address.data or "",
            privacy_notice_url=form.privacy_notice_url.data or "",
            footer_line=form.footer_line.data or "",
            undo_seconds=form.undo_seconds.data or "",
        )
        try:
            with transaction(db.session()):
                changed = save_forum_details(db.session(), wanted, settings=current_settings(), clock=clock())
        except InvalidInput as exc:
            field = exc.field if exc.field and exc.field in form else "forum_name"
            getattr(form, field).errors.append(str(exc))
        else:
            if changed:
                log.info("settings changed: %s", ",".join(changed))
                flash("The forum's details are saved. Pages show them now, and emails from the next one sent.")
            else:
                flash("Nothing was changed.")
            return redirect(url_for("admin.forum_settings"), 303)
    status = 400 if form.is_submitted() else 200
    configured = current_settings()
    return render_template(
        "admin/forum_settings.html", form=form, configured=configured, max_undo=MAX_UNDO_SECONDS
    ), status
