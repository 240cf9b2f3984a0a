"""Transactional mail as rows in the caller's transaction (S6).

A signup never waits on SMTP: the row commits with the signup, the worker sends it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import groupby
from typing import Any, NamedTuple

from sqlalchemy import insert
from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.models import MailKind, OutboxMessage, OutboxState, table_of


class QueuedMail(NamedTuple):
    """One outbox row to write: what to send, to whom, and not before when (None: now).

    A named tuple, not a dataclass: an import makes tens of thousands, and a tuple is made fastest."""

    kind: MailKind
    member_id: int | None = None
    to_address: str | None = None
    payload: dict[str, Any] | None = None
    send_at: datetime | None = None


def enqueue_mails(session: Session, mails: Sequence[QueuedMail], *, clock: Clock) -> None:
    """Queue many mails in one multi-row insert, created at clock.now().

    The one way outbox rows are written: enqueue_mail sends a list of one. A Core insert on the
    table (the column types still convert enums and UTC times), so nothing waits for a flush and no
    ORM objects are made: an import queues thousands at once. Members named must already have ids.
    Raises ValueError, and writes nothing, when a mail has neither a member nor an address."""
    if not mails:
        return
    if any(mail.member_id is None and mail.to_address is None for mail in mails):
        raise ValueError("an outbox message needs a member or an address")
    now = clock.now()
    rows = []
    for mail in mails:
        row: dict[str, Any] = {
            "kind": mail.kind,
            "member_id": mail.member_id,
            "to_address": mail.to_address,
            "state": OutboxState.PENDING,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": mail.send_at or now,
        }
        if mail.payload is not None:
            row["payload"] = mail.payload  # left out, not None: SQL NULL, where None would be JSON 'null'
        rows.append(row)
    # One statement per run of rows with the same columns, so the rows keep their order.
    for _, run in groupby(rows, key=lambda row: "payload" in row):
        session.execute(insert(table_of(OutboxMessage)), list(run))


def enqueue_mail(
    session: Session,
    kind: MailKind,
    *,
    clock: Clock,
    member_id: int | None = None,
    to_address: str | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Queue one mail to send now: enqueue_mails with a list of one."""
    enqueue_mails(
        session, [QueuedMail(kind, member_id=member_id, to_address=to_address, payload=payload)], clock=clock
    )
