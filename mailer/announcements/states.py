"""Every change of an announcement's state, from one rule table (J3, S1).

An admin's button and the worker go through the same door: one conditional statement,
``UPDATE announcement SET state = <to> ... WHERE id = :id AND state IN (<from>) [AND <guard>]``,
whose row count decides. Nothing reads the state first and writes it later, so an admin
pressing "Cancel" while the worker starts the send ends in one defined state: whichever
statement the database runs first wins, and the other is refused (the database makes the
second wait for the first: a row lock on PostgreSQL, the write lock on SQLite).

What the product promises (J3): edit or cancel until sending starts; pause and resume while
it sends. So "cancel" is refused once the worker has started: pause it instead.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, exists, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from mailer.clock import Clock
from mailer.errors import TransitionRefused
from mailer.models import Announcement, AnnouncementState, Delivery, DeliveryState

DRAFT, SCHEDULED, HELD = AnnouncementState.DRAFT, AnnouncementState.SCHEDULED, AnnouncementState.HELD
SENDING, PAUSED = AnnouncementState.SENDING, AnnouncementState.PAUSED
SENT, CANCELLED = AnnouncementState.SENT, AnnouncementState.CANCELLED

EDITABLE = (DRAFT, SCHEDULED, HELD)  # "until sending starts" (J3)


class Action(enum.StrEnum):
    """What can happen to an announcement. The first eight are the admin's (edit and seven buttons); the rest the
    worker's."""

    EDIT = "edit"  # change its text, audience or documents; the state stays
    SCHEDULE = "schedule"
    SEND_NOW = "send now"
    UNSCHEDULE = "unschedule"
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"  # "Stop this send" (issue 18): while sending or paused; who has not had it yet never will
    START = "start"  # the worker: its time came
    HOLD = "hold"  # the worker: its time passed long ago (no worker ran); an admin decides
    FINISH = "finish"  # the worker: nothing left to send


@dataclass(frozen=True)
class Conditions:
    """What a guard may look at: the moment of the change and the worker's hold-after setting."""

    now: datetime
    hold_after: timedelta | None


def _due(c: Conditions) -> ColumnElement[bool]:
    """Its time has come and (when the worker says how late is too late) it is not overdue."""
    due = Announcement.scheduled_at <= c.now
    return due if c.hold_after is None else due & (Announcement.scheduled_at >= c.now - c.hold_after)


def _overdue(c: Conditions) -> ColumnElement[bool]:
    if c.hold_after is None:
        raise ValueError("holding an announcement needs hold_after")
    return Announcement.scheduled_at < c.now - c.hold_after


def _nothing_left(c: Conditions) -> ColumnElement[bool]:
    """Re-checked in the statement itself: an admin may have paused, a retry may be due."""
    return ~exists().where(
        Delivery.announcement_id == Announcement.id,
        Delivery.state.in_([DeliveryState.PENDING, DeliveryState.SENDING]),
    )


@dataclass(frozen=True)
class Rule:
    """One transition: the states it starts from, the state it leads to, the fields it sets.

    `to` None keeps the state (an edit only claims the row). `stamps` are set to now, `clears`
    to NULL, `sets_time` to the time the caller gives; `guard` is a further condition in the
    same statement. `refused` finishes the sentence "This announcement is <state>. ..."."""

    starts_from: tuple[AnnouncementState, ...]
    to: AnnouncementState | None
    refused: str
    stamps: tuple[str, ...] = ("updated_at",)
    clears: tuple[str, ...] = ()
    sets_time: str | None = None
    guard: Callable[[Conditions], ColumnElement[bool]] | None = None


RULES: dict[Action, Rule] = {
    Action.EDIT: Rule(EDITABLE, None, "It can only be changed before sending starts."),
    Action.SCHEDULE: Rule(
        EDITABLE, SCHEDULED, "It can only be scheduled before sending starts.", sets_time="scheduled_at",
    ),
    Action.SEND_NOW: Rule(  # due at the end of the undo window (V1): send_at is now + MAILER_UNDO_SECONDS
        EDITABLE, SCHEDULED, "It has already started sending.", sets_time="scheduled_at",
    ),
    Action.UNSCHEDULE: Rule(  # "Stop, don't send": races START in the same way as CANCEL (V1)
        (SCHEDULED, HELD), DRAFT, "Only a scheduled one can go back to draft.", clears=("scheduled_at",),
    ),
    Action.CANCEL: Rule(EDITABLE, CANCELLED, "It can only be cancelled before sending starts; pause it instead."),
    Action.PAUSE: Rule((SENDING,), PAUSED, "Only an announcement that is sending can be paused."),
    Action.RESUME: Rule((PAUSED,), SENDING, "Only a paused announcement can be resumed."),
    Action.STOP: Rule(
        (SENDING, PAUSED), CANCELLED, "Only an announcement that is sending or paused can be stopped.",
        stamps=("finished_at", "updated_at"),
    ),
    Action.START: Rule(
        (SCHEDULED,), SENDING, "Only a scheduled announcement whose time has come can start.",
        stamps=("started_at", "updated_at"), guard=_due,
    ),
    Action.HOLD: Rule(
        (SCHEDULED,), HELD, "Only a scheduled announcement whose time passed long ago is held.",
        clears=("started_at",), guard=_overdue,
    ),
    Action.FINISH: Rule(
        (SENDING,), SENT, "Only an announcement that is sending, with nothing left to send, can finish.",
        stamps=("finished_at", "updated_at"), guard=_nothing_left,
    ),
}


def attempt(
    session: Session,
    announcement_id: int,
    action: Action,
    *,
    clock: Clock,
    send_at: datetime | None = None,
    hold_after: timedelta | None = None,
) -> bool:
    """Make the change if the rule allows it now; False (and nothing changed) if not.

    For the worker, where someone else getting there first is normal. `send_at` is the time
    for SCHEDULE and SEND_NOW (the end of the undo window); `hold_after` is how late a START may be (and how
    late a HOLD must be).
    The change is part of the caller's transaction; a loaded Announcement is refreshed on next use."""
    rule = RULES[action]
    now = clock.now()
    values: dict[str, Any] = dict.fromkeys(rule.stamps, now) | dict.fromkeys(rule.clears)
    if rule.sets_time is not None:
        if send_at is None:
            raise ValueError(f"{action} needs send_at")
        values[rule.sets_time] = send_at
    if rule.to is not None:
        values["state"] = rule.to
    conditions = [Announcement.id == announcement_id, Announcement.state.in_(rule.starts_from)]
    if rule.guard is not None:
        conditions.append(rule.guard(Conditions(now, hold_after)))
    result = cast("CursorResult[Any]", session.execute(
        update(Announcement).where(*conditions).values(values).execution_options(synchronize_session=False)
    ))
    loaded = session.identity_map.get(identity_key(Announcement, announcement_id))
    if loaded is not None:  # read again on next use, whoever won
        session.expire(loaded, sorted({"state", *values}))
    return bool(result.rowcount)


def transition(
    session: Session,
    announcement_id: int,
    action: Action,
    *,
    clock: Clock,
    send_at: datetime | None = None,
    hold_after: timedelta | None = None,
) -> AnnouncementState:
    """Make the change, or raise TransitionRefused naming the state it is in now (and change nothing).

    For admins: the page says why. Returns the state it is in afterwards."""
    rule = RULES[action]
    changed = attempt(session, announcement_id, action, clock=clock, send_at=send_at, hold_after=hold_after)
    if changed and rule.to is not None:
        return rule.to
    current = session.scalar(select(Announcement.state).where(Announcement.id == announcement_id))
    if changed and current is not None:
        return current  # an edit: the state stays
    if current is None:
        raise TransitionRefused(announcement_id, action, None, "This announcement no longer exists.")
    raise TransitionRefused(announcement_id, action, current, refusal_message(action, current))


def refusal_message(action: Action, state: AnnouncementState) -> str:
    """Why `action` cannot happen to an announcement in `state`, in words an admin reads on the page."""
    rule = RULES[action]
    if state is rule.to and state not in rule.starts_from:
        return f"This announcement is already {state.value}."
    if state in rule.starts_from and rule.guard is None:  # it changed between our statement and this look
        return f"This announcement changed a moment ago and is {state.value} now. Look at it again and try again."
    return f"This announcement is {state.value}. {rule.refused}"


def allowed_actions(state: AnnouncementState) -> list[Action]:
    """The actions the table allows from `state` (guards aside), in table order: what a page may offer."""
    return [action for action, rule in RULES.items() if state in rule.starts_from]


__all__ = ["EDITABLE", "RULES", "Action", "Rule", "allowed_actions", "attempt", "refusal_message", "transition"]
