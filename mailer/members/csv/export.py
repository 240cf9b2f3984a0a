"""The member export (J6): every member as CSV, in the columns an import reads.

Streams: a generator of lines, members read in keyset batches, so memory does not grow
with the list."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailer.members.csv.parse import EXPORT_COLUMNS, neutralise
from mailer.models import ConsentAction, ConsentEvent, Group, Member, MemberStatus, member_group

CONFIRMED_ON_THE_WEBSITE = "Joined on the website and confirmed by email link"


def csv_line_writer() -> Callable[[Iterable[str]], str]:
    """One CSV line at a time, for streaming a download; cells a spreadsheet would run as a formula get a leading
    apostrophe (the member export, the audit log)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells: Iterable[str]) -> str:
        writer.writerow([neutralise(cell) for cell in cells])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    return line


def export_lines(session: Session, *, batch_size: int = 1000, bom: bool = False) -> Iterator[str]:
    """Every member as CSV lines (RFC 4180, CRLF), header first, read in keyset batches.

    Columns are the ones an import reads, so an export imports into another copy as it
    is: members keep their consent evidence (the confirmation on the website, or the
    evidence they were imported with). Cells a spreadsheet would run as a formula get a
    leading apostrophe, which an import takes off again. `bom` helps Excel see UTF-8."""
    line = csv_line_writer()

    yield ("\ufeff" if bom else "") + line(EXPORT_COLUMNS)
    group_names = dict(session.execute(select(Group.id, Group.name).order_by(Group.position, Group.id)).all())
    group_order = {group_id: position for position, group_id in enumerate(group_names)}
    after = 0
    while True:
        members = session.execute(
            select(Member.id, Member.email, Member.name, Member.status, Member.social_media, Member.created_at)
            .where(Member.id > after)
            .order_by(Member.id)
            .limit(batch_size)
        ).all()
        if not members:
            return
        ids = [m.id for m in members]
        groups: dict[int, list[int]] = {}
        for member_id, group_id in session.execute(
            select(member_group.c.member_id, member_group.c.group_id).where(member_group.c.member_id.in_(ids))
        ):
            groups.setdefault(member_id, []).append(group_id)
        evidence = consent_evidence(session, ids)
        for m in members:
            names = [group_names[g] for g in sorted(groups.get(m.id, []), key=group_order.__getitem__)]
            given = evidence.get(m.id, ("", "", "")) if m.status is MemberStatus.MEMBER else ("", "", "")
            joined = m.created_at.isoformat() if m.created_at else ""
            yield line([m.email, m.name, m.status.value, ";".join(names), m.social_media.value, joined, *given])
        after = ids[-1]


def consent_evidence(session: Session, member_ids: list[int]) -> dict[int, tuple[str, str, str]]:
    """For each member, the latest consent given: (date, source, wording) as an import reads them."""
    rows = session.execute(
        select(ConsentEvent)
        .options(selectinload(ConsentEvent.wording))
        .where(
            ConsentEvent.member_id.in_(member_ids),
            ConsentEvent.action.in_([ConsentAction.CONFIRMED, ConsentAction.IMPORTED]),
        )
        .order_by(ConsentEvent.id)
    ).scalars()
    found: dict[int, tuple[str, str, str]] = {}
    for event in rows:
        detail = event.detail or {}
        if event.action is ConsentAction.IMPORTED and isinstance(detail.get("evidence"), dict):
            given = detail["evidence"]
            found[event.member_id] = (
                str(given.get("consent_date", "")),
                str(given.get("consent_source", "")),
                str(given.get("consent_wording", "")),
            )
        else:
            wording = detail.get("wording_as_shown") or (event.wording.text if event.wording else "")
            found[event.member_id] = (event.occurred_at.isoformat(), CONFIRMED_ON_THE_WEBSITE, str(wording))
    return found
