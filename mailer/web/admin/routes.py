"""Admin views: thin; every change is one domain call in a transaction."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, time
from typing import cast
from urllib.parse import urlencode

from flask import (
    Response,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_limiter.util import get_remote_address
from sqlalchemy import select

from mailer.admins.accounts import authenticate
from mailer.admins.permissions import permission_for
from mailer.admins.sessions import end_session_by_key
from mailer.admins.two_step import is_on as is_two_step_on
from mailer.announcements import check as checking
from mailer.announcements import drafts
from mailer.announcements import lifecycle as domain
from mailer.announcements.documents import document_path, find_document_links, list_documents
from mailer.announcements.gaps import announcement_gaps, bracket_texts, confirm_brackets, draft_gaps, meant_brackets
from mailer.announcements.states import EDITABLE, allowed_actions
from mailer.errors import CheckOutdated, GapsLeft, InvalidInput, NobodyToSend, WrongState
from mailer.extensions import db, limiter
from mailer.logs.redact import address_tag
from mailer.mail.announcement import TEST_PREFIX, AnnouncementContent
from mailer.mail.document_links import human_size
from mailer.members import consent
from mailer.members.addresses import address_hash
from mailer.members.admin import find_dashboard
from mailer.members.membership import list_groups
from mailer.models import Announcement, Delivery, Member
from mailer.transaction import transaction
from mailer.web.admin import bp
from mailer.web.admin.forms import (
    ActionForm,
    AnnouncementForm,
    ConfirmSendForm,
    ConsentWordingForm,
    LoginForm,
    ScheduleForm,
    TestSendForm,
)
from mailer.web.auth import audit_login, begin_session, current_session_key, may_use, set_pending
from mailer.web.context import announcement_mail, clock, current_settings, forum_settings, membership_policy
from mailer.web.libs import SelectChoice, current_user, login_required, logout_user, unauthorized
from mailer.web.numbers import int_arg

log = logging.getLogger(__name__)
REPORT_PAGE_SIZE = 100


def _login_account_key() -> str:
    """Failures count per account *and* IP address (issue 15): someone guessing from elsewhere
    cannot lock the real admin out. The address is a keyed hash, so the table names nobody."""
    typed = (request.form.get("email") or "").strip().lower()[:320]
    return f"login:{get_remote_address()}:{address_hash(membership_policy().suppression_key, typed)}"


def _login_limit_ip() -> str:
    return current_settings().login_rate_limit_ip


def _login_limit_account() -> str:
    return current_settings().login_rate_limit_account


def _failed_login(response: Response) -> bool:
    """Only a password that was checked and wrong counts, not a missing CSRF token or a blank form."""
    return bool(g.get("login_failed"))


@bp.before_request
def require_login() -> ResponseReturnValue | None:
    permission = permission_for(request.endpoint)
    if (permission is not None and permission.public) or current_user.is_authenticated:
        return None
    return unauthorized()


@bp.after_request
def no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit_ip, methods=["POST"])
@limiter.limit(_login_limit_account, methods=["POST"], key_func=_login_account_key, deduct_when=_failed_login)
def login() -> ResponseReturnValue:
    form = LoginForm()
    failed = False
    if form.validate_on_submit():
        with transaction(db.session()):
            admin = authenticate(db.session(), form.email.data or "", form.password.data or "", clock=clock())
            if admin is None or not is_two_step_on(admin):
                audit_login(admin, form.email.data or "")  # with two-step, the code page records the log-in
        if admin is not None and is_two_step_on(admin):
            set_pending(admin)  # the password alone does not log in: the code page finishes it (issue 19)
            log.info("admin %d: password accepted, asking for the two-step code", admin.id)
            return redirect(url_for("admin.login_code"), 303)
        if admin is not None:
            with transaction(db.session()):
                begin_session(admin)
            log.info("admin %d: logged in", admin.id)
            return redirect(url_for("admin.dashboard"), 303)
        failed = g.login_failed = True
        key = membership_policy().suppression_key
        log.warning("admin login failed for address %s", address_tag(form.email.data or "", key=key))
    status = 400 if form.is_submitted() else 200
    return render_template("admin/login.html", form=form, failed=failed), status


@bp.post("/logout")
@login_required
def logout() -> ResponseReturnValue:
    """Ends the session on the server too: the cookie, even a copy of it, no longer logs anyone in.
    The admin's sessions on other devices go on (they can be ended from the sessions page, issue 19)."""
    with transaction(db.session()):
        end_session_by_key(db.session(), current_session_key(), clock=clock())
    log.info("admin %d: logged out", current_user.id)
    logout_user()
    return redirect(url_for("admin.login"), 303)


@bp.get("/")
def dashboard() -> ResponseReturnValue:
    items = db.session.scalars(select(Announcement).order_by(Announcement.created_at.desc()).limit(100)).all()
    figures = find_dashboard(db.session(), clock=clock())
    return render_template(
        "admin/dashboard.html",
        announcements=items,
        figures=figures,
        counts={s.value: n for s, n in figures.by_status.items()},
        to_london=domain.to_london,
    )


@bp.route("/announcements/new", methods=["GET", "POST"])
def new_announcement() -> ResponseReturnValue:
    form = _announcement_form()
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                announcement = domain.create_announcement(
                    db.session(), _draft(form), admin_id=current_user.id, clock=clock()
                )
        except InvalidInput as exc:
            _field_error(form, exc)
        else:
            flash("Draft saved.")
            return redirect(url_for("admin.announcement", announcement_id=announcement.id), 303)
    return _render_form(form, None)


@bp.route("/announcements/<int:announcement_id>/edit", methods=["GET", "POST"])
def edit_announcement(announcement_id: int) -> ResponseReturnValue:
    announcement = db.get_or_404(Announcement, announcement_id)
    form = _announcement_form(announcement)
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                domain.update_announcement(db.session(), announcement, _draft(form), clock=clock())
        except InvalidInput as exc:
            _field_error(form, exc)
        else:
            flash("Changes saved.")
            return redirect(url_for("admin.announcement", announcement_id=announcement.id), 303)
    return _render_form(form, announcement)


@bp.get("/announcements/<int:announcement_id>")
def announcement(announcement_id: int) -> ResponseReturnValue:
    return _render_announcement(db.get_or_404(Announcement, announcement_id))


def _render_announcement(
    item: Announcement, schedule_form: ScheduleForm | None = None, status: int = 200
) -> ResponseReturnValue:
    """The announcement's page; with `schedule_form`, the schedule form as the admin filled it in, with its errors
    on the page (issue 18.8: a time in the past or a bad date is put right where it was typed)."""
    samples, chosen = _sample_member(item)
    subject, _, text = announcement_mail().sample(
        _content(item), to_name=chosen.name if chosen else "", group_names=chosen.group_names if chosen else ()
    )
    return render_template(
        "admin/announcement.html",
        item=item,
        subject=subject,
        text=text,
        samples=samples,
        chosen=chosen,
        documents=list_documents(db.session(), item.id),
        human_size=human_size,
        document_path=document_path,
        reach=domain.count_audience(db.session(), [g.id for g in item.groups], item.only_without_social_media),
        progress=domain.announcement_progress(db.session(), item.id),
        schedule_form=schedule_form or ScheduleForm(),
        action_form=ActionForm(),
        allowed=allowed_actions(item.state),  # the buttons follow the rule table
        to_london=domain.to_london,
        gaps=announcement_gaps(db.session(), item) if item.state in EDITABLE else [],
        now=clock().now(),
        undo_seconds=forum_settings().undo_seconds,
    ), status


@bp.get("/announcements/<int:announcement_id>/preview.html")
def preview_html(announcement_id: int) -> ResponseReturnValue:
    """The exact HTML part, shown in a sandboxed frame: its inline styles are allowed, nothing else."""
    item = db.get_or_404(Announcement, announcement_id)
    _, chosen = _sample_member(item)
    _, html, _ = announcement_mail().sample(
        _content(item), to_name=chosen.name if chosen else "", group_names=chosen.group_names if chosen else ()
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox allow-popups"
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _test_send_cost() -> int:
    """A test to five addresses counts five against MAILER_TEST_SEND_RATE_LIMIT (issue 18.5)."""
    typed = [part for part in re.split(r"[\s,;]+", request.form.get("addresses", "")) if part]
    return min(max(len(typed), 1), drafts.MAX_TEST_ADDRESSES)


def _test_send_key() -> str:
    return f"test-send:{current_user.id}"


@bp.route("/announcements/<int:announcement_id>/test", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_settings().test_send_rate_limit, methods=["POST"], key_func=_test_send_key, cost=_test_send_cost
)
def send_test(announcement_id: int) -> ResponseReturnValue:
    """A test email to up to five addresses typed in (none: to me), marked "[Test]" in its subject, filled in
    with the data of the member chosen in the preview (issue 18.5). Errors come back on this page."""
    item = db.get_or_404(Announcement, announcement_id)
    to_anyone = may_use("admin.members")  # writers test to themselves only, and see no member data (V4)
    samples, _ = _sample_member(item)
    form = TestSendForm(data={"sample": request.args.get("sample", "")})
    form.sample.choices = [SelectChoice("", "A member with no name and no groups")] + [  # type: ignore[assignment]
        SelectChoice(str(m.id), f"{m.name or '(no name)'} – {m.email}") for m in samples
    ]
    if form.validate_on_submit():
        chosen = next((m for m in samples if str(m.id) == form.sample.data), None)
        try:
            _refuse_gaps(item)  # V2: nothing unfinished goes out, not even as a test
            typed = form.addresses.data or "" if to_anyone else ""
            addresses = drafts.parse_test_addresses(typed, default=current_user.email)
            with transaction(db.session()):
                drafts.queue_test_sends(
                    db.session(), item, addresses, sample_member_id=chosen.id if chosen else None, clock=clock()
                )
        except InvalidInput as exc:
            form.addresses.errors = [str(exc)]
        else:
            log.info("admin %d: test of announcement %d queued to %d address(es)", current_user.id, item.id,
                     len(addresses))
            flash(
                f"A test email is on its way to {', '.join(addresses)}"
                + (f", showing {chosen.name or 'the member chosen'}'s details" if chosen else "")
                + ". It usually arrives within a minute."
            )
            return redirect(url_for("admin.announcement", announcement_id=item.id), 303)
    status = 400 if form.is_submitted() else 200
    subject, _, _ = announcement_mail().sample(_content(item), to_name="")
    return render_template(
        "admin/test_send.html", item=item, form=form, subject=TEST_PREFIX + subject, to_anyone=to_anyone,
        gaps=announcement_gaps(db.session(), item),
    ), status


@bp.route("/announcements/<int:announcement_id>/check", methods=["GET", "POST"])
def check(announcement_id: int) -> ResponseReturnValue:
    """V1: what "Send now" or "Schedule" will do, before it does it. GET ?action=send-now (the default) or
    ?action=schedule&send_date=...&send_time=...; POST confirms the brackets listed are meant (V2)."""
    item = db.get_or_404(Announcement, announcement_id)
    action = request.args.get("action", checking.SEND_NOW)
    if request.method == "POST":
        form = ActionForm()
        if not form.validate_on_submit():
            raise InvalidInput("The form could not be checked. Go back and try again.")
        with transaction(db.session()):
            domain.update_announcement(db.session(), item, _saved_draft(item), clock=clock())  # claims the row
            confirm_brackets(item, bracket_texts(announcement_gaps(db.session(), item)))
        flash("Noted: those brackets are meant to be there.")
        query = urlencode({k: v for k, v in request.args.items() if k in ("action", "send_date", "send_time")})
        return redirect(f"{url_for('admin.check', announcement_id=item.id)}?{query}", 303)
    if item.state not in EDITABLE:
        raise WrongState(f"This announcement is {item.state.value}, so there is nothing to send.")
    if action != checking.SCHEDULE:
        return _render_check(item, action, None)
    schedule_form = ScheduleForm(formdata=request.args, meta={"csrf": False})
    if not schedule_form.validate():
        return _render_announcement(item, schedule_form, 400)
    try:
        return _render_check(item, action, _check_time(action))
    except InvalidInput as exc:
        if exc.field not in ("send_date", "send_time"):
            raise
        getattr(schedule_form, exc.field).errors = [str(exc)]
        return _render_announcement(item, schedule_form, 400)


@bp.post("/announcements/<int:announcement_id>/<any('send-now','schedule'):action>")
def confirm_send(announcement_id: int, action: str) -> ResponseReturnValue:
    """Only from the check page: its signed token names this announcement, its content and the count shown.
    Anything else is refused and changes nothing; a changed draft gets the check page again."""
    item = db.get_or_404(Announcement, announcement_id)
    form = ConfirmSendForm()
    if not form.validate_on_submit():
        raise InvalidInput("Nothing was sent: check the announcement on its check page first.")
    settings = forum_settings()  # the undo window an owner set on the forum details page (V6)
    try:
        with transaction(db.session()):
            shown, due = checking.confirm_send(
                db.session(), item, form.check.data or "", action=action, secret=settings.secret_key,
                clock=clock(), undo=settings.undo_window,
            )
    except (CheckOutdated, GapsLeft, NobodyToSend) as exc:
        when = None if action == checking.SEND_NOW else _check_time_or_none(action)
        return _render_check(item, action, when, problem=str(exc), status=409)
    log.info("admin %d: announcement %d %s for %d members", current_user.id, item.id, action, shown.count)
    if action == checking.SEND_NOW:
        flash(f"It will start sending at {domain.to_london(due):%H:%M:%S} (UK time) to {shown.count:,} "
              "members. Until then you can stop it.")
    else:
        flash(f"Scheduled for {domain.to_london(due):%A %-d %B %Y at %H:%M} (UK time). It goes to the members "
              f"in its audience then: {shown.count:,} now.")
    return redirect(url_for("admin.announcement", announcement_id=item.id), 303)


@bp.route("/announcements/<int:announcement_id>/stop", methods=["GET", "POST"])
def stop_sending(announcement_id: int) -> ResponseReturnValue:
    """ "Stop this send" (issue 18): GET says what happens; POST stops it (the members still waiting never get it)."""
    item = db.get_or_404(Announcement, announcement_id)
    form = ActionForm()
    if form.validate_on_submit():
        with transaction(db.session()):
            left = domain.stop_sending(db.session(), item, clock=clock())
        flash(f"Stopped. {left:,} member{'' if left == 1 else 's'} waiting for it will not get it.")
        return redirect(url_for("admin.announcement", announcement_id=item.id), 303)
    if item.state.value not in ("sending", "paused"):
        raise WrongState(f"This announcement is {item.state.value}. Only one that is sending or paused can be stopped.")
    progress = domain.announcement_progress(db.session(), item.id)
    return render_template("admin/stop_send.html", item=item, form=form, progress=progress)


@bp.post("/announcements/<int:announcement_id>/copy")
def copy(announcement_id: int) -> ResponseReturnValue:
    """V3: any announcement, sent or cancelled, becomes the start of a new draft."""
    item = db.get_or_404(Announcement, announcement_id)
    if not ActionForm().validate_on_submit():
        raise InvalidInput("The form could not be checked. Go back and try again.")
    with transaction(db.session()):
        new = domain.copy_announcement(db.session(), item, admin_id=current_user.id, clock=clock())
    flash("This is a new draft, copied from the announcement. Nothing has been sent.")
    return redirect(url_for("admin.announcement", announcement_id=new.id), 303)


def _check_time(action: str) -> datetime | None:
    """The time a "Schedule" check is for, from the schedule form's fields in the query string."""
    if action != checking.SCHEDULE:
        return None
    form = ScheduleForm(formdata=request.args, meta={"csrf": False})
    if not form.validate():
        raise InvalidInput(
            " ".join(e for errors in form.errors.values() for e in errors if isinstance(e, str))
            or "Enter a date and time."
        )
    # validate passed InputRequired and parsed both fields, so neither is None here
    return domain.london_time_to_utc(cast(date, form.send_date.data), cast(time, form.send_time.data))


def _check_time_or_none(action: str) -> datetime | None:
    try:
        return _check_time(action)
    except InvalidInput:
        return None


def _render_check(
    item: Announcement, action: str, when: datetime | None, *, problem: str | None = None, status: int = 200
) -> ResponseReturnValue:
    settings = forum_settings()  # the undo window an owner set on the forum details page (V6)
    if action == checking.SCHEDULE and when is None:  # a refused POST: the time shown is the one signed
        when = item.scheduled_at if item.scheduled_at is not None else clock().now() + settings.undo_window
    shown = checking.check_send(db.session(), item, action=action, when=when, clock=clock(),
                                undo=settings.undo_window)
    return render_template(
        "admin/check.html",
        item=item,
        check=shown,
        token=checking.sign_check(shown, settings.secret_key),
        form=ConfirmSendForm(),
        action_form=ActionForm(),
        brackets=bracket_texts(shown.gaps),
        only_brackets=bool(shown.gaps) and len(bracket_texts(shown.gaps)) == len(shown.gaps),
        problem=problem,
        undo_seconds=settings.undo_seconds,
        schedule_args={k: v for k, v in request.args.items() if k in ("action", "send_date", "send_time")},
        when_args={k: v for k, v in request.args.items() if k in ("send_date", "send_time")},  # a refusal shows it
    ), status


def _refuse_gaps(item: Announcement) -> None:
    gaps = announcement_gaps(db.session(), item)
    if gaps:
        first = gaps[0]
        raise InvalidInput(
            f"Nothing was sent. {first.where}: {first.message} "
            + ("" if len(gaps) == 1 else f"There are {len(gaps)} things to fix, listed on the announcement's page.")
        )


def _saved_draft(item: Announcement) -> domain.AnnouncementDraft:
    return domain.AnnouncementDraft(
        subject=item.subject, body_markdown=item.body_markdown, group_ids=[g.id for g in item.groups],
        only_without_social_media=item.only_without_social_media,
    )


_ACTIONS = {
    "unschedule": (domain.unschedule_announcement, "Stopped: it is a draft again and nothing was sent."),
    "cancel": (domain.cancel_announcement, "Cancelled. It will not be sent."),
    "pause": (domain.pause_announcement, "Paused. Nothing more goes out until you resume."),
    "resume": (domain.resume_announcement, "Resumed."),
}


@bp.post("/announcements/<int:announcement_id>/<any('unschedule','cancel','pause','resume'):action>")
def change_state(announcement_id: int, action: str) -> ResponseReturnValue:
    item = db.get_or_404(Announcement, announcement_id)
    change, message = _ACTIONS[action]
    with transaction(db.session()):
        change(db.session(), item, clock=clock())
    flash(message)
    return redirect(url_for("admin.announcement", announcement_id=item.id), 303)


@bp.post("/announcements/<int:announcement_id>/publish")
def publish(announcement_id: int) -> ResponseReturnValue:
    item = db.get_or_404(Announcement, announcement_id)
    public = request.form.get("public") == "1"
    with transaction(db.session()):
        domain.publish_announcement(db.session(), item, public, clock=clock())
    flash("It is now in the public archive." if public else "It is no longer in the public archive.")
    return redirect(url_for("admin.announcement", announcement_id=item.id), 303)


@bp.get("/announcements/<int:announcement_id>/progress.json")
def progress_json(announcement_id: int) -> ResponseReturnValue:
    item = db.get_or_404(Announcement, announcement_id)
    progress = domain.announcement_progress(db.session(), item.id)
    waiting = {}  # while it waits (the undo window, issue 18): when it starts, by the server's clock
    if item.scheduled_at is not None and item.state.value == "scheduled":
        waiting = {"starts_at": item.scheduled_at.isoformat(), "now": clock().now().isoformat()}
    return jsonify(state=item.state.value, **progress.__dict__, done=progress.done, percent=progress.percent,
                   **waiting)


@bp.get("/announcements/<int:announcement_id>/report")
def report(announcement_id: int) -> ResponseReturnValue:
    item = db.get_or_404(Announcement, announcement_id)
    page = int_arg("page", default=1, maximum=100_000) or 1
    only_failed = request.args.get("show") == "failed"
    query = (
        select(Delivery, Member.email, Member.name)
        .outerjoin(Member, Member.id == Delivery.member_id)
        .where(Delivery.announcement_id == item.id)
        .order_by(Delivery.id)
    )
    if only_failed:
        query = query.where(Delivery.state == "failed")
    rows = db.session.execute(query.offset((page - 1) * REPORT_PAGE_SIZE).limit(REPORT_PAGE_SIZE + 1)).all()
    return render_template(
        "admin/report.html",
        item=item,
        rows=rows[:REPORT_PAGE_SIZE],
        page=page,
        has_next=len(rows) > REPORT_PAGE_SIZE,
        only_failed=only_failed,
        progress=domain.announcement_progress(db.session(), item.id),
        to_london=domain.to_london,
    )


def _announcement_form(item: Announcement | None = None) -> AnnouncementForm:
    form = AnnouncementForm(
        obj=None,
        data=None
        if item is None
        else {
            "subject": item.subject,
            "body": item.body_markdown,
            "groups": [g.id for g in item.groups],
            "only_without_social_media": item.only_without_social_media,
        },
    )
    # Retired groups leave the audience list (V6), except on an announcement that already has them.
    kept = [] if item is None else [g for g in item.groups if g.retired_at is not None]
    form.groups.choices = [
        SelectChoice(g.id, g.name if g.retired_at is None else f"{g.name} (retired)")  # type: ignore[misc]
        for g in list_groups(db.session()) + kept
    ]
    return form


def _render_form(form: AnnouncementForm, item: Announcement | None) -> ResponseReturnValue:
    reach = domain.count_audience(
        db.session(), list(form.groups.data or []), bool(form.only_without_social_media.data)
    )
    status = 400 if form.is_submitted() else 200
    if item is not None and item.state not in EDITABLE:
        flash(f"This announcement is {item.state.value} and can no longer be edited.")
        return redirect(url_for("admin.announcement", announcement_id=item.id), 303)
    gaps = (
        draft_gaps(db.session(), form.subject.data or "", form.body.data or "",
                   meant_brackets=meant_brackets(item) if item is not None else ())
        if item is not None or form.is_submitted() else []
    )
    return render_template("admin/compose.html", form=form, item=item, reach=reach, gaps=gaps), status


def _draft(form: AnnouncementForm) -> domain.AnnouncementDraft:
    return domain.AnnouncementDraft(
        subject=form.subject.data or "",
        body_markdown=form.body.data or "",
        group_ids=list(form.groups.data or []),
        only_without_social_media=bool(form.only_without_social_media.data),
    )


def _field_error(form: AnnouncementForm, exc: InvalidInput) -> None:
    field = {"body": "body", "subject": "subject", "groups": "groups"}.get(exc.field or "", "subject")
    getattr(form, field).errors.append(str(exc))


def _sample_member(item: Announcement) -> tuple[list[domain.SampleMember], domain.SampleMember | None]:
    """The preview's member (?sample=<id>, one of a few in the audience); none: the test email's
    values, a member with no name and no groups, so the default preview is exactly the test send.
    A role that may not see members (writers, issue 19) gets no samples: the preview is the test send."""
    if not may_use("admin.members"):
        return [], None
    samples = domain.list_sample_members(db.session(), [g.id for g in item.groups], item.only_without_social_media)
    wanted = int_arg("sample")
    return samples, next((s for s in samples if s.id == wanted), None)


def _content(item: Announcement) -> AnnouncementContent:
    documents = find_document_links(db.session(), [item.id]).get(item.id, ())
    return AnnouncementContent(item.id, item.subject, item.body_markdown, item.updated_at, documents)




@bp.route("/consent", methods=["GET", "POST"])
def consent_wording() -> ResponseReturnValue:
    """Publish a new consent wording; earlier versions are kept as they were (C1)."""
    current = consent.current_wording(db.session())
    form = ConsentWordingForm(data={"text": current.text, "privacy_notice_version": current.privacy_notice_version})
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                wording = consent.publish_wording(
                    db.session(), form.text.data or "", form.privacy_notice_version.data or "", clock=clock()
                )
        except InvalidInput as exc:
            getattr(form, exc.field or "text").errors.append(str(exc))
        else:
            flash(f"Version {wording.version} is now shown on the join form.")
            return redirect(url_for("admin.consent_wording"), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("admin/consent.html", form=form, wordings=consent.list_wordings(db.session())), status


@bp.route("/announcements/<int:announcement_id>/delete", methods=["GET", "POST"])
def delete_announcement(announcement_id: int) -> ResponseReturnValue:
    """GET asks (and whether to keep its documents online); POST deletes."""
    from mailer.announcements.documents import list_documents, remove_stored_file

    item = db.get_or_404(Announcement, announcement_id)
    documents = list_documents(db.session(), item.id)
    form = ActionForm()
    if form.validate_on_submit():
        keep = request.form.get("documents", "keep") != "delete"
        subject = item.subject
        with transaction(db.session()):
            removed = domain.delete_announcement(db.session(), item, keep_documents=keep)
        directory = current_settings().document_dir
        for storage_name in removed:  # after the commit: the rows went first
            remove_stored_file(directory, storage_name)
        flash(f"“{subject}” is deleted." + (" Its documents stay online." if documents and keep else ""))
        return redirect(url_for("admin.dashboard"), 303)
    if item.state not in domain.DELETABLE:
        raise WrongState(
            f"This announcement is {item.state.value}. Cancel it, or let it finish sending, before deleting it."
        )
    return render_template("admin/delete_announcement.html", item=item, documents=documents, form=form)
