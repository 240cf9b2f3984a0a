"""Owners look after the groups members choose (V6, issue 20): add, rename, reorder, retire, bring back.

A retired group is hidden from the join form, the preferences page and the audience picker
(membership.list_groups leaves it out); its members keep it, and announcements sent to it still
name it. Nothing here deletes a group: ids stay, so past reports and consent history keep meaning.
Names are unique whatever their case ("Forum News" and "forum news" are the same group to a parent)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.errors import InvalidInput
from mailer.models import Group, member_group
from mailer.text import has_control_characters

MAX_GROUP_NAME = 100
MAX_GROUP_DESCRIPTION = 300


class Direction(enum.StrEnum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class GroupSummary:
    """One group as the groups page shows it."""

    id: int
    name: str
    description: str
    position: int
    retired_at: datetime | None
    member_count: int

    @property
    def retired(self) -> bool:
        return self.retired_at is not None


def summarise_groups(session: Session) -> list[GroupSummary]:
    """Every group, retired ones too, in the join form's order, with how many people are in each."""
    counts: dict[int, int] = dict(
        session.execute(select(member_group.c.group_id, func.count()).group_by(member_group.c.group_id)).all()
    )
    return [
        GroupSummary(g.id, g.name, g.description, g.position, g.retired_at, int(counts.get(g.id, 0)))
        for g in _in_order(session)
    ]


def find_group(session: Session, group_id: int) -> Group:
    """The group with this id. Raises InvalidInput when there is none."""
    group = session.get(Group, group_id)
    if group is None:
        raise InvalidInput("There is no group with that number.")
    return group


def count_people_in(session: Session, group_id: int) -> int:
    """Everyone linked to the group, whatever their state: what retiring it would hide from the forms."""
    return int(session.scalar(select(func.count()).where(member_group.c.group_id == group_id)) or 0)


def add_group(session: Session, name: str, description: str) -> Group:
    """A new group at the end of the list. Raises InvalidInput (field name or description) for bad input."""
    name, description = _checked(session, name, description, group_id=None)
    last = session.scalar(select(func.max(Group.position))) or 0
    group = Group(name=name, description=description, position=last + 1)
    session.add(group)
    session.flush()
    return group


def change_group(session: Session, group: Group, name: str, description: str) -> dict[str, dict[str, str]]:
    """Rename and/or describe a group; returns what changed ({field: {from, to}}), empty when nothing did.

    Raises InvalidInput (field name or description) for bad input."""
    name, description = _checked(session, name, description, group_id=group.id)
    changes = {
        key: {"from": old, "to": new}
        for key, old, new in (("name", group.name, name), ("description", group.description, description))
        if old != new
    }
    group.name, group.description = name, description
    session.flush()
    return changes


def move_group(session: Session, group: Group, direction: Direction) -> bool:
    """Swap the group with its neighbour among the groups in use; False when it is already at that end
    (or retired: retired groups are not on the forms, so they have no place in the order)."""
    if group.retired_at is not None:
        return False
    ordered = _in_order(session)
    for position, item in enumerate(ordered, start=1):  # 1..n, so every swap is well defined
        item.position = position
    active = [g for g in ordered if g.retired_at is None]
    index = active.index(group)
    other_index = index - 1 if direction is Direction.UP else index + 1
    if not 0 <= other_index < len(active):
        session.flush()
        return False
    other = active[other_index]
    group.position, other.position = other.position, group.position
    session.flush()
    return True


def retire_group(session: Session, group: Group, *, clock: Clock) -> bool:
    """Hide the group from the join form, preferences and audience; False when it was already retired."""
    if group.retired_at is not None:
        return False
    group.retired_at = clock.now()
    session.flush()
    return True


def restore_group(session: Session, group: Group) -> bool:
    """Bring a retired group back, in its old place; False when it was not retired."""
    if group.retired_at is None:
        return False
    group.retired_at = None
    session.flush()
    return True


def _in_order(session: Session) -> list[Group]:
    return list(session.scalars(select(Group).order_by(Group.position, Group.id)))


def _checked(session: Session, name: str, description: str, *, group_id: int | None) -> tuple[str, str]:
    name, description = (name or "").strip(), (description or "").strip()
    if not name:
        raise InvalidInput("Enter a name for the group.", field="name")
    if len(name) > MAX_GROUP_NAME:
        raise InvalidInput(f"The group's name must be {MAX_GROUP_NAME} characters or fewer.", field="name")
    if has_control_characters(name):
        raise InvalidInput("The group's name must not contain line breaks or control characters.", field="name")
    if len(description) > MAX_GROUP_DESCRIPTION:
        raise InvalidInput(
            f"The description must be {MAX_GROUP_DESCRIPTION} characters or fewer.", field="description"
        )
    if has_control_characters(description.replace("\r\n", " ").replace("\n", " ")):
        raise InvalidInput("The description must not contain control characters.", field="description")
    # Compared in Python: SQLite's lower() only folds ASCII, and the list of groups is short.
    others = session.scalars(select(Group.name).where(Group.id != (group_id or 0)))
    clash = next((other for other in others if other.casefold() == name.casefold()), None)
    if clash is not None:
        raise InvalidInput(f"There is already a group called \u201c{clash}\u201d. Choose another name.", field="name")
    return name, description.replace("\r\n", " ").replace("\n", " ")
