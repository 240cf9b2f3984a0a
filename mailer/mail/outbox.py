"""Transactional mail as rows in the caller's transaction (S6).

A signup never waits on SMTP: the row commits with the signup, the worker sends it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.models import MailKind, OutboxMessage, OutboxState


def enqueue_mail(
    session: Session,
    kind: MailKind,
    *,
    clock: Clock,
    member_id: int | None = None,
    to_address: str | None = None,
    payload: dict[str, Any] | None = None,
) -> OutboxMessage:
    if member_id is None and to_address is None:
        raise ValueError("an outbox message needs a member or an address")
    now = clock.now()
    message = OutboxMessage(
        kind=kind,
        member_id=member_id,
        to_address=to_address,
        payload=payload,
        state=OutboxState.PENDING,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(message)
    return message
