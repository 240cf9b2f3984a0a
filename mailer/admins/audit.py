"""The audit log (V5): record what admins do, in the same transaction as the action; read it back.

Two ways in. A plain call, `record_audit`, for events that are not a change through an admin form (log-in,
failed log-in). And a pending event (`expect_audit`) that the web layer attaches to the request's session
before an audited view runs: a `before_commit` listener adds the row when that view commits, so the row and
the action are one transaction, and a view that refuses the input (and commits nothing) records nothing.

Rows name an admin by id and address (kept after the admin is removed) and an object by type and id, never a
member's address. Nothing here updates or deletes a row: the ORM refuses to, and only the daily housekeeping
deletes rows older than the retention period."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.members.csv.export import csv_line_writer
from mailer.models import Admin, AuditEvent

PENDING_KEY = "mailer.audit.pending"
USER_AGENT_MAX = 300
CSV_COLUMNS = ("id", "when_utc", "admin_id", "admin_email", "action", "object_type", "object_id", "ip_address",
               "user_agent")


class AuditLogIsAppendOnly(RuntimeError):
    """Raised when code tries to change or delete an audit row through the ORM (a bug, never user input)."""


@dataclass
class PendingAudit:
    """An audit event waiting for the commit of the action it describes."""

    admin_id: int | None
    admin_email: str
    action: str
    ip_address: str | None
    user_agent: str | None
    clock: Clock
    object_type: str | None = None
    object_id: str | None = None
    creates: str | None = None  # table of the row the action creates: its id becomes object_id
    recorded: bool = False


def record_audit(
    session: Session,
    *,
    actor: Admin | None,
    action: str,
    object_type: str | None = None,
    object_id: int | str | None = None,
    ip: str | None,
    user_agent: str | None,
    clock: Clock,
) -> AuditEvent:
    """Add one audit row to `session` (the caller's transaction commits it with the action)."""
    row = AuditEvent(
        created_at=clock.now(),
        admin_id=actor.id if actor is not None else None,
        admin_email=actor.email if actor is not None else "",
        action=action[:100],
        object_type=object_type,
        object_id=None if object_id is None else str(object_id)[:100],
        ip_address=(ip or None) and ip[:100],
        user_agent=(user_agent or None) and user_agent[:USER_AGENT_MAX],
    )
    session.add(row)
    return row


def record_failed_login(
    session: Session, typed_email: str, *, ip: str | None, user_agent: str | None, clock: Clock
) -> AuditEvent:
    """A failed log-in: names the admin when the address is one, otherwise nobody. What was typed is never
    stored (it may be a member's address, or a password typed into the wrong box)."""
    key = (typed_email or "").strip().lower()
    admin = session.scalar(select(Admin).where(Admin.email == key)) if key and len(key) <= 320 else None
    return record_audit(session, actor=admin, action="log-in failed", ip=ip, user_agent=user_agent, clock=clock)


# --- the pending event of a request ---------------------------------------------------------------


def expect_audit(session: Session, pending: PendingAudit) -> None:
    """Record `pending` when `session` next commits (once)."""
    session.info[PENDING_KEY] = pending


def pending_audit(session: Session) -> PendingAudit | None:
    value = session.info.get(PENDING_KEY)
    return value if isinstance(value, PendingAudit) else None


def forget_audit(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


def record_pending(session: Session) -> None:
    """Add the pending event's row now (for actions that commit nothing themselves, such as a download)."""
    pending = pending_audit(session)
    if pending is None or pending.recorded:
        return
    if pending.creates and pending.object_type != pending.creates:
        session.flush()  # a row added but not yet written gets its id (see _created)
    session.add(
        AuditEvent(
            created_at=pending.clock.now(),
            admin_id=pending.admin_id,
            admin_email=pending.admin_email,
            action=pending.action,
            object_type=pending.object_type,
            object_id=pending.object_id,
            ip_address=pending.ip_address,
            user_agent=pending.user_agent,
        )
    )
    pending.recorded = True


def _before_commit(session: Session) -> None:
    record_pending(session)


def _created(session: Session, instance: Any) -> None:
    """A row was written: the first of the kind the pending action creates is the action's object (replacing the
    object its URL names: a document added to announcement 3 is recorded as that document)."""
    pending = pending_audit(session)
    if (pending is not None and pending.creates and pending.object_type != pending.creates
            and getattr(instance, "__tablename__", None) == pending.creates):
        pending.object_type, pending.object_id = pending.creates, str(instance.id)


def _refuse_change(mapper: Any, connection: Any, target: AuditEvent) -> None:
    raise AuditLogIsAppendOnly(f"audit event {target.id} cannot be changed or deleted")


def listen_for_audit(session_class: type[Session]) -> None:
    """Install the commit hook on a Session class (idempotent)."""
    if not event.contains(session_class, "before_commit", _before_commit):
        event.listen(session_class, "before_commit", _before_commit)
        event.listen(session_class, "after_soft_rollback", _after_soft_rollback)
        event.listen(session_class, "pending_to_persistent", _created)


def _after_soft_rollback(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:  # the outermost transaction rolled back
        pending = pending_audit(session)
        if pending is not None:
            pending.recorded = False


event.listen(AuditEvent, "before_update", _refuse_change)
event.listen(AuditEvent, "before_delete", _refuse_change)


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    admin_id: int | None = None
    action: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def _filtered(query: Any, filters: AuditFilter) -> Any:
    if filters.admin_id is not None:
        query = query.where(AuditEvent.admin_id == filters.admin_id)
    if filters.action:
        query = query.where(AuditEvent.action == filters.action)
    if filters.since is not None:
        query = query.where(AuditEvent.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.created_at < filters.until)
    return query


@dataclass(frozen=True)
class AuditPage:
    events: Sequence[AuditEvent]
    older_than: int | None  # the id to ask for the next (older) page with, or None on the last page


def list_audit_events(
    session: Session, filters: AuditFilter, *, before_id: int | None = None, limit: int = 50
) -> AuditPage:
    """Newest first, `limit` at a time, paged by id (keyset: stable while new events arrive)."""
    query = _filtered(select(AuditEvent), filters)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    rows = list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    return AuditPage(rows[:limit], rows[limit - 1].id if len(rows) > limit else None)


def audit_admins(session: Session) -> list[tuple[int, str]]:
    """Every admin named in the log (id, latest address), including admins since removed, for the filter."""
    rows = session.execute(
        select(AuditEvent.admin_id, AuditEvent.admin_email)
        .where(AuditEvent.admin_id.is_not(None))
        .group_by(AuditEvent.admin_id, AuditEvent.admin_email)
        .order_by(AuditEvent.admin_email)
    ).all()
    seen: dict[int, str] = {}
    for admin_id, email in rows:
        if admin_id is not None:
            seen.setdefault(admin_id, email)
    return sorted(seen.items(), key=lambda item: item[1])


def audit_actions(session: Session) -> list[str]:
    """Every action the log holds, for the filter."""
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


def audit_csv_lines(session: Session, filters: AuditFilter, *, batch_size: int = 1000) -> Iterator[str]:
    """The filtered log as CSV lines, newest first, read in keyset batches. Cells a spreadsheet would run
    as a formula (a user agent can be anything) get a leading apostrophe, as in the member export."""
    line = csv_line_writer()

    yield line(CSV_COLUMNS)
    before: int | None = None
    while True:
        page = list_audit_events(session, filters, before_id=before, limit=batch_size)
        for row in page.events:
            yield line([
                str(row.id), row.created_at.strftime("%Y-%m-%d %H:%M:%S"), "" if row.admin_id is None else
                str(row.admin_id), row.admin_email, row.action, row.object_type or "", row.object_id or "",
                row.ip_address or "", row.user_agent or "",
            ])
        if page.older_than is None:
            return
        before = page.older_than
