"""The audit log page (V5, pinned route /admin/audit): owners filter it, page back through it and download it.

Thin: the filters become a mailer.admins.audit.AuditFilter; the rows come from there. Paging is by id
(`?before=<id>`, "Older"), so a page does not shift while new events arrive."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Response, render_template, request, stream_with_context
from flask.typing import ResponseReturnValue

from mailer.admins import audit as domain
from mailer.extensions import db
from mailer.web.admin import bp
from mailer.web.admin.forms import AuditFilterForm
from mailer.web.context import clock
from mailer.web.libs import SelectChoice
from mailer.web.numbers import int_arg

PAGE_SIZE = 50
LONDON = ZoneInfo("Europe/London")


def _start_of(day: date) -> datetime:
    """Midnight in the UK at the start of `day`, as UTC."""
    return datetime.combine(day, time(0), tzinfo=LONDON).astimezone(UTC)


@bp.get("/audit")
def audit_log() -> ResponseReturnValue:
    session = db.session()
    form = AuditFilterForm(formdata=request.args)
    form.who.choices = [SelectChoice("", "Anyone")] + [  # type: ignore[assignment]  # types-WTForms predates SelectChoice
        SelectChoice(str(admin_id), email or f"Admin {admin_id}") for admin_id, email in domain.audit_admins(session)
    ]
    form.what.choices = [SelectChoice("", "Anything")] + [  # type: ignore[assignment]
        SelectChoice(action, action) for action in domain.audit_actions(session)
    ]
    before = int_arg("before")
    valid = form.validate()
    if valid and form.since.data and form.until.data and form.until.data < form.since.data:
        form.until.errors = ["The “to” date must be the same as or after the “from” date."]
        valid = False
    filters = domain.AuditFilter(
        admin_id=int(form.who.data) if valid and form.who.data else None,
        action=form.what.data or None if valid else None,
        since=_start_of(form.since.data) if valid and form.since.data else None,
        until=_start_of(form.until.data + timedelta(days=1)) if valid and form.until.data else None,
    )
    if valid and request.args.get("format") == "csv":
        response = Response(stream_with_context(domain.audit_csv_lines(session, filters)), mimetype="text/csv")
        response.headers["Content-Disposition"] = f'attachment; filename="audit-{clock().now():%Y-%m-%d}.csv"'
        return response
    page = domain.list_audit_events(session, filters, before_id=before, limit=PAGE_SIZE) if valid else None
    query = {key: value for key, value in request.args.items() if key in ("who", "what", "since", "until") and value}
    return render_template(
        "admin/audit.html",
        form=form,
        page=page,
        query=query,
        first_page=before is None,
        to_london=lambda moment: moment.astimezone(LONDON),
    ), (200 if valid else 400)
