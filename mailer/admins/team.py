"""The admins of the service (V4): who they are, their roles, removing one. There is always at least one owner.

Two owners demoting (or removing) each other at the same moment must not leave none: the change first locks
every owner's row (SELECT ... FOR UPDATE on PostgreSQL, so the second waits for the first to commit and then
counts again), and the change itself is one conditional UPDATE/DELETE that only applies while another owner
remains (on SQLite, where a write holds the database, that alone decides)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, Update, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from mailer.admins.two_step import is_on as is_two_step_on
from mailer.errors import AdminGone, LastOwner
from mailer.models import Admin, AdminRole

ROLE_WORDS = {
    AdminRole.OWNER: "Owner",
    AdminRole.SENDER: "Sender",
    AdminRole.WRITER: "Writer",
}
ROLE_DESCRIPTIONS = {
    AdminRole.OWNER: "everything, including admins, settings, export and erasure",
    AdminRole.SENDER: "write, test, schedule and send announcements; see and add members",
    AdminRole.WRITER: "write drafts and test them to themselves; no member details",
}


@dataclass(frozen=True)
class AdminSummary:
    """One admin as the admins page lists them. `two_step` is None where two-step login is not known."""

    id: int
    email: str
    role: AdminRole
    created_at: datetime
    last_login_at: datetime | None
    two_step: bool | None


def list_admins(session: Session) -> list[AdminSummary]:
    """Every admin, owners first, then by address, with whether two-step login is on."""
    admins = session.scalars(select(Admin).order_by(Admin.email))
    rows = [
        AdminSummary(
            a.id, a.email, a.role, a.created_at, a.last_login_at,
            is_two_step_on(a),
        )
        for a in admins
    ]
    order = list(AdminRole)
    return sorted(rows, key=lambda row: order.index(row.role))


def _lock_owners(session: Session) -> list[int]:
    """Lock every owner's row until the transaction ends (PostgreSQL); their ids."""
    return list(session.scalars(select(Admin.id).where(Admin.role == AdminRole.OWNER).order_by(Admin.id)
                                .with_for_update()))


def _another_owner_remains(admin_id: int) -> Any:
    """SQL: the admin is not an owner, or some other admin is."""
    other = aliased(Admin)
    return or_(
        Admin.role != AdminRole.OWNER,
        select(other.id).where(and_(other.role == AdminRole.OWNER, other.id != admin_id)).exists(),
    )


def _run_guarded(session: Session, statement: Update | Delete, admin_id: int) -> None:
    result = cast(CursorResult[Any], session.execute(statement.execution_options(synchronize_session=False)))
    if result.rowcount == 1:
        return
    if session.get(Admin, admin_id, populate_existing=True) is None:
        raise AdminGone()
    raise LastOwner()


def change_role(session: Session, admin_id: int, role: AdminRole) -> Admin:
    """Give the admin `role`; it applies from their next request. Raises LastOwner when that would leave no
    owner, AdminGone when they no longer exist; nothing changes then."""
    _lock_owners(session)
    guard = _another_owner_remains(admin_id) if role is not AdminRole.OWNER else Admin.id == admin_id
    _run_guarded(session, update(Admin).where(Admin.id == admin_id, guard).values(role=role), admin_id)
    admin = session.get(Admin, admin_id, populate_existing=True)
    if admin is None:
        raise AdminGone()
    return admin


def remove_admin(session: Session, admin_id: int) -> str:
    """Delete the admin; every session of theirs ends at once (the session loader finds nobody). Announcements
    they wrote stay. Returns the address they had. Raises LastOwner or AdminGone; nothing changes then."""
    _lock_owners(session)
    email = session.scalar(select(Admin.email).where(Admin.id == admin_id))
    if email is None:
        raise AdminGone()
    _run_guarded(session, delete(Admin).where(Admin.id == admin_id, _another_owner_remains(admin_id)), admin_id)
    return email


def count_owners(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Admin).where(Admin.role == AdminRole.OWNER)) or 0)
