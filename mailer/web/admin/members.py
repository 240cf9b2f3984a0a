"""Members admin pages (J6): list and search, member detail and actions, CSV export, CSV import.

Thin like routes.py: read the request, call mailer.members.admin or mailer.members.csv.* in a
transaction, respond. An import is uploaded, stored under a random name, previewed row by
row, and only applied by a second POST naming that upload."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import BinaryIO, cast

from flask import Response, flash, redirect, render_template, request, stream_with_context, url_for
from flask.typing import ResponseReturnValue

from mailer.announcements.lifecycle import to_london
from mailer.bounces import records as bounces
from mailer.errors import InvalidInput, NotPending, StorageFull, Suppressed
from mailer.extensions import db
from mailer.members import admin as member_admin
from mailer.members.csv.apply import apply_import
from mailer.members.csv.export import export_lines
from mailer.members.csv.parse import EXPORT_COLUMNS, read_file_lines
from mailer.members.csv.plan import OUTCOME_WORDS, ImportSummary, plan_import, summarise
from mailer.members.csv.uploads import (
    discard_upload,
    remove_stale_uploads,
    result_path,
    save_result,
    save_upload,
    upload_path,
)
from mailer.members.membership import list_groups
from mailer.members.one_member import pending_address_change
from mailer.models import ConsentAction, ConsentMethod, MailKind, Member, MemberStatus, OutboxState
from mailer.transaction import transaction
from mailer.web.admin import bp
from mailer.web.admin.forms import STATUS_WORDS, ActionForm, ImportUploadForm, MemberFilterForm
from mailer.web.auth import may_use
from mailer.web.context import clock, current_settings, membership_policy
from mailer.web.libs import SelectChoice, current_user
from mailer.web.numbers import int_arg

log = logging.getLogger(__name__)
PAGE_SIZE = 50

ACTION_WORDS = {
    ConsentAction.REQUESTED: "Asked to join (ticked the consent box)",
    ConsentAction.CONFIRMED: "Confirmed by pressing the button in the email",
    ConsentAction.WITHDRAWN: "Unsubscribed",
    ConsentAction.IMPORTED: "Imported with consent evidence",
    ConsentAction.SUPPRESSED: "Put on the do-not-mail list",
    ConsentAction.PREFERENCES: "Changed their details",
}
METHOD_WORDS = {
    ConsentMethod.FORM: "the join form on the website",
    ConsentMethod.EMAIL_LINK: "a link in an email",
    ConsentMethod.ONE_CLICK: "the unsubscribe button in their email program",
    ConsentMethod.IMPORT: "a CSV import",
    ConsentMethod.ADMIN: "an admin, on their behalf",
    ConsentMethod.SYSTEM: "the mail system",
    ConsentMethod.PHONE: "by phone, recorded by an admin",
    ConsentMethod.PAPER_FORM: "on a paper form, recorded by an admin",
    ConsentMethod.IN_PERSON: "in person, recorded by an admin",
}
KIND_WORDS = {
    MailKind.CONFIRM: "Please confirm",
    MailKind.ALREADY_MEMBER: "You are already a member",
    MailKind.WELCOME: "Welcome",
    MailKind.TEST: "Test announcement",
    MailKind.PREFERENCES_LINK: "Link to change their details",
    MailKind.CONFIRM_REMINDER: "Reminder to confirm",
    MailKind.WELCOME_ADDED: "Welcome (added by an admin)",
    MailKind.ADDRESS_CONFIRM: "Please confirm your new address (to the new address)",
    MailKind.ADDRESS_CHANGED: "Your emails now go to a new address (to the old address)",
}
OUTBOX_WORDS = {
    OutboxState.PENDING: "Waiting to go",
    OutboxState.SENDING: "Being sent",
    OutboxState.SENT: "Sent",
    OutboxState.FAILED: "Failed",
    OutboxState.DROPPED: "Not sent (no longer needed)",
}


def _template_words() -> dict[str, object]:
    return {
        "status_words": STATUS_WORDS,
        "action_words": ACTION_WORDS,
        "method_words": METHOD_WORDS,
        "kind_words": KIND_WORDS,
        "outbox_words": OUTBOX_WORDS,
        "outcome_words": OUTCOME_WORDS,
        "to_london": to_london,
    }


# --- list -------------------------------------------------------------------------


@bp.get("/members")
def members() -> ResponseReturnValue:
    groups = list_groups(db.session(), include_retired=True)  # their members keep retired groups (V6)
    form = MemberFilterForm(formdata=request.args)
    form.group.choices = (
        [SelectChoice("", "Any group")]  # type: ignore[assignment]  # types-WTForms predates SelectChoice
        + [SelectChoice(str(g.id), g.name) for g in groups]
    )
    after = int_arg("after")
    page = None
    if form.validate():
        page = member_admin.list_members(
            db.session(),
            search=form.q.data or "",
            status=MemberStatus(form.status.data) if form.status.data else None,
            group_id=int(form.group.data) if form.group.data else None,
            after_id=after,
            limit=PAGE_SIZE,
        )
    filters = {k: v for k, v in {"q": form.q.data, "status": form.status.data, "group": form.group.data}.items() if v}
    return render_template(
        "admin/members/list.html",
        form=form,
        page=page,
        filters=filters,
        first_page=not after,
        by_status=member_admin.count_by_status(db.session()),
        by_group=member_admin.count_by_group(db.session()),
        **_template_words(),
    ), (200 if page is not None else 400)


# --- one member ---------------------------------------------------------------------


@bp.get("/members/<int:member_id>")
def member(member_id: int) -> ResponseReturnValue:
    item = db.get_or_404(Member, member_id)
    return render_template(
        "admin/members/detail.html",
        member=item,
        history=member_admin.find_member_history(db.session(), item.id),
        bounce_events=bounces.list_member_bounces(db.session(), item.id),
        bounce_threshold=current_settings().bounce_threshold,
        bounce_decay_days=int(current_settings().bounce_decay_days),
        next_confirmation_at=member_admin.next_confirmation_allowed_at(item, membership_policy()),
        pending_address=pending_address_change(
            db.session(), item.id, max_age=current_settings().confirm_max_age, now=clock().now()
        ),
        now=clock().now(),
        action_form=ActionForm(),
        **_template_words(),
    )


@bp.post("/members/<int:member_id>/resend-confirmation")
def resend_confirmation(member_id: int) -> ResponseReturnValue:
    item = db.get_or_404(Member, member_id)
    policy = membership_policy()
    try:
        with transaction(db.session()):
            outcome = member_admin.resend_confirmation_by_admin(
                db.session(), item.id, current_user.id, policy=policy, clock=clock()
            )
    except (NotPending, Suppressed) as exc:
        flash(str(exc))
    else:
        if outcome is member_admin.ResendOutcome.QUEUED:
            flash(f"The confirmation email is on its way to {item.email}. It usually arrives within a minute.")
        else:
            allowed = member_admin.next_confirmation_allowed_at(item, policy)
            flash(
                "A confirmation email was sent to them recently, so no other was sent. "
                f"You can send another after {to_london(allowed):%H:%M on %-d %B} (UK time)."
                if allowed
                else "A confirmation email was sent to them recently, so no other was sent."
            )
    return redirect(url_for("admin.member", member_id=item.id), 303)


@bp.post("/members/<int:member_id>/unsubscribe")
def unsubscribe_member(member_id: int) -> ResponseReturnValue:
    item = db.get_or_404(Member, member_id)
    with transaction(db.session()):
        _, changed = member_admin.unsubscribe_on_behalf(db.session(), item.id, current_user.id, clock=clock())
    flash(f"{item.email} is unsubscribed and gets no more emails." if changed else "They were already unsubscribed.")
    return redirect(url_for("admin.member", member_id=item.id), 303)


@bp.route("/members/<int:member_id>/erase", methods=["GET", "POST"])
def erase_member(member_id: int) -> ResponseReturnValue:
    item = db.get_or_404(Member, member_id)
    form = ActionForm()
    if form.validate_on_submit():
        with transaction(db.session()):
            member_admin.erase_on_behalf(
                db.session(),
                item.id,
                current_user.id,
                suppression_key=membership_policy().suppression_key,
                clock=clock(),
            )
        flash("Their details and consent history are erased. A scrambled copy of the address is kept so they are "
              "not emailed again unless they join again themselves.")
        return redirect(url_for("admin.members"), 303)
    return render_template("admin/members/erase.html", member=item, form=form, **_template_words())


# --- export -------------------------------------------------------------------------


@bp.get("/members/export.csv")
def export_members() -> ResponseReturnValue:
    """Streamed: rows are read in batches while the download runs, never built in memory."""
    lines = export_lines(db.session(), bom=True)
    response = Response(stream_with_context(lines), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="members-{clock().now():%Y-%m-%d}.csv"'
    log.info("admin %d: exported the members list", current_user.id)
    return response


# --- import -------------------------------------------------------------------------


@bp.url_value_preprocessor
def import_upload_limit(endpoint: str | None, values: dict[str, object] | None) -> None:
    """Only the import page takes big bodies, and only from a logged-in admin.

    The limit must be raised before anything reads the form, and app-wide before_request
    hooks (CSRF, the NUL check) read it before any blueprint's; URL value preprocessors run
    ahead of all of them. A file over the limit gets the 413 page; every other form, and
    anyone not logged in, keeps MAX_CONTENT_LENGTH."""
    if endpoint == "admin.import_members" and may_use("admin.import_members"):
        request.max_content_length = current_settings().import_max_bytes


@bp.route("/members/import", methods=["GET", "POST"])
def import_members() -> ResponseReturnValue:
    form = ImportUploadForm()
    if form.validate_on_submit():
        directory = _import_dir()
        remove_stale_uploads(directory, clock=clock())
        try:
            # werkzeug types the upload's stream as IO[bytes]; it is a binary file, which save_upload reads
            import_id, path = save_upload(directory, cast(BinaryIO, form.file.data.stream))
        except StorageFull as exc:
            log.error("admin %d: an import file could not be stored: the disk is full", current_user.id)
            form.file.errors = [str(exc)]
            return _upload_page(form), 507
        log.info("admin %d: uploaded an import file (%d bytes)", current_user.id, path.stat().st_size)
        return redirect(url_for("admin.import_preview", import_id=import_id), 303)
    status = 400 if form.is_submitted() else 200
    return _upload_page(form), status


@bp.get("/members/import/<import_id>")
def import_preview(import_id: str) -> ResponseReturnValue:
    directory = _import_dir()
    path = upload_path(directory, import_id)
    try:
        summary = summarise(
            plan_import(
                db.session(),
                read_file_lines(path),
                suppression_key=membership_policy().suppression_key,
                clock=clock(),
            )
        )
    except InvalidInput as exc:
        discard_upload(directory, import_id)
        form = ImportUploadForm()
        form.file.errors = [str(exc)]
        return _upload_page(form), 400
    return render_template(
        "admin/members/preview.html",
        summary=summary,
        import_id=import_id,
        per_minute=current_settings().import_confirmations_per_minute,
        action_form=ActionForm(),
        **_template_words(),
    )


@bp.post("/members/import/<import_id>/apply")
def import_apply(import_id: str) -> ResponseReturnValue:
    directory = _import_dir()
    path = upload_path(directory, import_id)
    summary = apply_import(
        db.session(),
        read_file_lines(path),
        settings=current_settings().import_settings,
        clock=clock(),
        admin_id=current_user.id,
    )
    try:
        save_result(directory, import_id, summary)
    except StorageFull:
        # The import is done; only the page that shows it could not be kept. Show it now instead.
        log.error("admin %d: an import's result could not be stored: the disk is full", current_user.id)
        return _result_page(summary)
    finally:
        discard_upload(directory, import_id)
    return redirect(url_for("admin.import_result", import_id=import_id), 303)


@bp.post("/members/import/<import_id>/cancel")
def import_cancel(import_id: str) -> ResponseReturnValue:
    discard_upload(_import_dir(), import_id)
    flash("Nothing was imported, and the uploaded file is deleted.")
    return redirect(url_for("admin.import_members"), 303)


@bp.get("/members/import/<import_id>/result")
def import_result(import_id: str) -> ResponseReturnValue:
    path = result_path(_import_dir(), import_id)
    if not path.is_file():
        raise InvalidInput("There is no result for that import. It may be more than a day old.")
    return _result_page(ImportSummary.from_json(path.read_text(encoding="utf-8")))


def _result_page(summary: ImportSummary) -> str:
    return render_template("admin/members/result.html", summary=summary, **_template_words())


def _upload_page(form: ImportUploadForm) -> str:
    return render_template(
        "admin/members/import.html",
        form=form,
        columns=EXPORT_COLUMNS,
        groups=list_groups(db.session()),
        max_megabytes=current_settings().import_max_bytes // (1024 * 1024),
    )


def _import_dir() -> Path:
    return current_settings().import_dir
