"""The outbox as a kind of queued mail (S6): built at send time, sent, then marked sent, retried or failed.

engine/queue.py runs the loop; this module says how outbox rows are claimed and built, and which
are dropped because nobody is left to send them to."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.admins.links import live_link_key
from mailer.announcements.documents import find_document_links
from mailer.clock import Clock
from mailer.engine.idsets import in_ids
from mailer.engine.queue import QueueKind, QueueSummary, SetAside, States, retry_allowed
from mailer.engine.settings import EngineSettings
from mailer.engine.transport import SendFailure
from mailer.logs.redact import redact
from mailer.mail.announcement import AnnouncementContent, AnnouncementMail
from mailer.mail.transactional import ADMIN_LINK_MAIL, TransactionalMail
from mailer.mail.verp import VerpKind
from mailer.models import (
    Announcement,
    Group,
    MailKind,
    Member,
    MemberStatus,
    OutboxMessage,
    OutboxState,
    member_group,
)

log = logging.getLogger(__name__)

_NOBODY = SetAside(OutboxState.DROPPED, "nobody to send it to any more")


@dataclass(frozen=True)
class _Job:
    """What one claimed row needs once the claim is committed: plain values, no ORM objects.

    An empty address: nobody to send it to any more (erased, unsubscribed)."""

    id: int
    kind: MailKind
    address: str
    to_name: str
    link_key: str
    token_version: int
    announcement: AnnouncementContent | None = None
    sample_groups: tuple[str, ...] = ()  # a test send: the groups of the member chosen in the preview
    group_names: tuple[str, ...] | None = None  # the welcome mail lists the member's groups (issue 20.6)


class OutboxSummary(QueueSummary):
    @property
    def dropped(self) -> int:
        return self.set_aside[OutboxState.DROPPED]


class OutboxQueue(QueueKind[_Job]):
    """Transactional mail (confirmations, notices, test sends), one outbox row per message."""

    model = OutboxMessage
    states = States.of(OutboxState)
    verp = VerpKind.OUTBOX
    noun = "outbox message(s)"

    def __init__(self, mail: TransactionalMail, announcement_mail: AnnouncementMail) -> None:
        self.mail = mail
        self.announcement_mail = announcement_mail

    def load(self, session: Session, ids: list[int]) -> list[_Job]:
        return _load_jobs(session, ids)

    def set_aside(self, item: _Job) -> SetAside | None:
        return None if item.address else _NOBODY

    def build(self, item: _Job, *, now: datetime) -> bytes:
        if item.kind is MailKind.TEST and item.announcement is not None:
            return self.announcement_mail.build_test(item.announcement, to_address=item.address, now=now,
                                                     outbox_id=item.id, sample_name=item.to_name,
                                                     sample_groups=item.sample_groups)
        return self.mail.build(item.kind, to_address=item.address, to_name=item.to_name, link_key=item.link_key,
                               token_version=item.token_version, now=now, outbox_id=item.id,
                               group_names=item.group_names)

    def dispose(
        self, session: Session, item: _Job, failure: SendFailure, *, attempts: int, settings: EngineSettings,
        clock: Clock,
    ) -> bool:
        """The shared rule, with a log line for each row: transactional mail is rare and each one matters."""
        again = retry_allowed(failure, attempts=attempts, settings=settings)
        if again:
            log.info("outbox %d: will retry (attempt %d): %s", item.id, attempts, redact(str(failure)))
        else:
            log.warning("outbox %d: failed after %d attempt(s): %s", item.id, attempts, redact(str(failure)))
        return again


@dataclass(frozen=True)
class _Row:
    """The outbox columns a job needs."""

    id: int
    kind: MailKind
    member_id: int | None
    to_address: str | None
    payload: dict[str, Any] | None


@dataclass(frozen=True)
class _Recipient:
    """The member columns a job needs."""

    link_key: str
    email: str
    name: str
    status: MemberStatus
    token_version: int


def _load_jobs(session: Session, ids: list[int]) -> list[_Job]:
    # Plain columns, not ORM objects: loading two whole entities per row cost more than building the mail.
    rows = session.execute(
        select(
            OutboxMessage.id,
            OutboxMessage.kind,
            OutboxMessage.member_id,
            OutboxMessage.to_address,
            OutboxMessage.payload,
            Member.link_key,
            Member.email,
            Member.name,
            Member.status,
            Member.token_version,
        )
        .outerjoin(Member, Member.id == OutboxMessage.member_id)
        .where(in_ids(session, OutboxMessage.id, ids))
        .order_by(OutboxMessage.id)
    ).all()
    jobs = [
        _job_for(session, _Row(*row[:5]), None if row[5] is None else _Recipient(*row[5:]))
        for row in rows
    ]
    welcomed = {row.id: row.member_id for row in rows if row.kind is MailKind.WELCOME and row.member_id is not None}
    return [_with_group_names(session, job, welcomed[job.id]) if job.id in welcomed else job for job in jobs]


def _with_group_names(session: Session, job: _Job, member_id: int) -> _Job:
    """A welcome mail's job with the groups the member chose, in the join form's order (issue 20.6)."""
    names = session.scalars(
        select(Group.name)
        .join(member_group, member_group.c.group_id == Group.id)
        .where(member_group.c.member_id == member_id)
        .order_by(Group.position, Group.id)
    )
    return replace(job, group_names=tuple(names))


def _job_for(session: Session, row: _Row, member: _Recipient | None) -> _Job:
    """Decide the recipient at send time: an erased or departed member gets nothing (S5)."""
    if row.kind is MailKind.TEST:
        announcement_id = (row.payload or {}).get("announcement_id")
        item = session.get(Announcement, announcement_id) if isinstance(announcement_id, int) else None
        if item is None:
            return _Job(row.id, row.kind, "", "", "", 0)
        documents = find_document_links(session, [item.id]).get(item.id, ())
        content = AnnouncementContent(item.id, item.subject, item.body_markdown, item.updated_at, documents)
        name, groups = _sample_values(session, (row.payload or {}).get("sample_member_id"))
        return _Job(row.id, row.kind, row.to_address or "", name, "", 0, content, groups)
    if row.kind in ADMIN_LINK_MAIL:
        # An admin link used, withdrawn or replaced since the mail was queued: nothing to send (V4).
        link_key = live_link_key(session, row.kind, (row.payload or {}).get("link_id"), row.to_address or "")
        if link_key is None:
            return _Job(row.id, row.kind, "", "", "", 0)
        return _Job(row.id, row.kind, row.to_address or "", "", link_key, 0)
    if row.member_id is None:
        return _Job(row.id, row.kind, row.to_address or "", "", "", 0)
    if member is None or not _still_wanted(row.kind, member):
        return _Job(row.id, row.kind, "", "", "", 0)
    if row.kind in (MailKind.ADDRESS_CONFIRM, MailKind.ADDRESS_CHANGED):
        # To the address in the row (the new one to confirm, or the old one being told), not the member's (V7).
        change_key = (row.payload or {}).get("change_key")
        if row.kind is MailKind.ADDRESS_CONFIRM:
            if not isinstance(change_key, str) or not change_key:
                return _Job(row.id, row.kind, "", "", "", 0)
            return _Job(row.id, row.kind, row.to_address or "", member.name, change_key, 1)
        return _Job(row.id, row.kind, row.to_address or "", member.name, member.link_key, member.token_version)
    return _Job(row.id, row.kind, member.email, member.name, member.link_key, member.token_version)


def _sample_values(session: Session, member_id: object) -> tuple[str, tuple[str, ...]]:
    """The name and groups of the member a test send shows (issue 18.5), read now: one who has left or
    was erased since shows as a member with no name and no groups."""
    if not isinstance(member_id, int):
        return "", ()
    member = session.get(Member, member_id)
    if member is None or member.status is not MemberStatus.MEMBER:
        return "", ()
    return member.name, tuple(g.name for g in member.groups)


def _still_wanted(kind: MailKind, member: _Recipient) -> bool:
    if kind is MailKind.CONFIRM_REMINDER:  # issue 20.7: only while they have still not confirmed
        return member.status is MemberStatus.PENDING
    if kind is MailKind.CONFIRM:
        return member.status in (MemberStatus.PENDING, MemberStatus.UNSUBSCRIBED)
    return member.status is MemberStatus.MEMBER
