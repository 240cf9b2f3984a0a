"""What an import would do to each row (J6, C3): the preview, and the rules apply.py follows.

An import never bypasses consent: a row without consent evidence becomes a pending member
asked to confirm by email, a row with evidence a member with an `imported` consent event, a
row the file says left is kept on record and never mailed, and a suppressed address is never
added. Nothing already on the list is changed, so running a file twice is harmless."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.members.addresses import address_hash
from mailer.members.csv.parse import CHUNK_SIZE, ParsedRow, groups_by_name, parsed_chunks
from mailer.models import Member, Suppression


class Outcome(enum.StrEnum):
    """What happens to one row of an import."""

    NEW_PENDING = "new_pending"
    NEW_MEMBER_WITH_EVIDENCE = "new_member_with_evidence"
    NEW_UNSUBSCRIBED = "new_unsubscribed"  # the file says they left: kept on record, never mailed
    ALREADY_ON_LIST = "already_on_list"
    SUPPRESSED = "suppressed"
    DUPLICATE = "duplicate"
    INVALID = "invalid"


ADDS = frozenset({Outcome.NEW_PENDING, Outcome.NEW_MEMBER_WITH_EVIDENCE, Outcome.NEW_UNSUBSCRIBED})
PROBLEMS = frozenset({Outcome.DUPLICATE, Outcome.INVALID})

# Plain words for pages and the command line: (before applying, after applying).
OUTCOME_WORDS: dict[Outcome, tuple[str, str]] = {
    Outcome.NEW_PENDING: (
        "will be added and sent an email asking them to confirm",
        "added and sent an email asking them to confirm",
    ),
    Outcome.NEW_MEMBER_WITH_EVIDENCE: (
        "will be added as members, using the consent evidence in the file",
        "added as members, with the consent evidence from the file",
    ),
    Outcome.NEW_UNSUBSCRIBED: (
        "will be recorded as having left the list, and not emailed",
        "recorded as having left the list, and not emailed",
    ),
    Outcome.ALREADY_ON_LIST: ("are already on the list and will not be changed", "already on the list, not changed"),
    Outcome.SUPPRESSED: (
        "are on the do-not-mail list and will be skipped",
        "on the do-not-mail list, skipped",
    ),
    Outcome.DUPLICATE: ("repeat an address from an earlier row and will be skipped", "repeated an address, skipped"),
    Outcome.INVALID: ("have a problem and will be skipped", "had a problem, skipped"),
}


@dataclass(frozen=True)
class RowOutcome:
    """One row's fate, with the line it starts on in the file (as a spreadsheet numbers it)."""

    line: int
    email: str
    outcome: Outcome
    reason: str = ""
    duplicate_of: int | None = None

    def describe(self) -> str:
        if self.outcome is Outcome.DUPLICATE:
            return f"the same address as line {self.duplicate_of}"
        return self.reason or OUTCOME_WORDS[self.outcome][0]

    def to_dict(self) -> dict[str, Any]:
        """Without the address: what a result file keeps."""
        return {"line": self.line, "outcome": self.outcome.value, "reason": self.reason,
                "duplicate_of": self.duplicate_of}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RowOutcome:
        return cls(data["line"], "", Outcome(data["outcome"]), data["reason"], data["duplicate_of"])


@dataclass
class ImportSummary:
    """Counts for every outcome, the first rows and the first problems: what a page or a terminal shows.

    Bounded however long the file is; `total` and `counts` cover every row."""

    keep_rows: int = 200
    keep_problems: int = 500
    total: int = 0
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    rows: list[RowOutcome] = field(default_factory=list)
    problems: list[RowOutcome] = field(default_factory=list)
    first_confirmation_at: datetime | None = None
    last_confirmation_at: datetime | None = None

    def add(self, row: RowOutcome) -> None:
        self.total += 1
        self.counts[row.outcome] += 1
        if len(self.rows) < self.keep_rows:
            self.rows.append(row)
        if row.outcome in PROBLEMS and len(self.problems) < self.keep_problems:
            self.problems.append(row)

    @property
    def problem_count(self) -> int:
        return sum(self.counts[o] for o in PROBLEMS)

    @property
    def added(self) -> int:
        return sum(self.counts[o] for o in ADDS)

    def describe(self, *, applied: bool) -> list[str]:
        """One line per outcome that happened, in plain words."""
        which = 1 if applied else 0
        lines = [f"{self.total} row(s) read."]
        lines += [f"{self.counts[o]} {OUTCOME_WORDS[o][which]}." for o in Outcome if self.counts[o]]
        return lines

    def to_json(self) -> str:
        """The summary without any email address: what a result file keeps (issue 15). A member
        erased after the import must not stay listed in it; rows are told apart by line number."""
        first, last = self.first_confirmation_at, self.last_confirmation_at
        return json.dumps(
            {
                "total": self.total,
                "counts": {o.value: n for o, n in self.counts.items()},
                "rows": [r.to_dict() for r in self.rows],
                "problems": [r.to_dict() for r in self.problems],
                "first_confirmation_at": first.isoformat() if first else None,
                "last_confirmation_at": last.isoformat() if last else None,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ImportSummary:
        data = json.loads(text)
        summary = cls(total=data["total"], counts={Outcome(k): v for k, v in data["counts"].items()})
        summary.rows = [RowOutcome.from_dict(r) for r in data["rows"]]
        summary.problems = [RowOutcome.from_dict(r) for r in data["problems"]]
        summary.keep_rows, summary.keep_problems = len(summary.rows), len(summary.problems)
        for name in ("first_confirmation_at", "last_confirmation_at"):
            if data.get(name):
                setattr(summary, name, datetime.fromisoformat(data[name]))
        return summary


def summarise(outcomes: Iterable[RowOutcome], *, keep_rows: int = 200, keep_problems: int = 500) -> ImportSummary:
    summary = ImportSummary(keep_rows=keep_rows, keep_problems=keep_problems)
    for row in outcomes:
        summary.add(row)
    return summary


def plan_import(
    session: Session,
    lines: Iterable[str],
    *,
    suppression_key: bytes,
    clock: Clock,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[RowOutcome]:
    """What an import of these lines would do to each row, in file order; changes nothing.

    Streams: rows are parsed one at a time and looked up a chunk at a time. Raises
    InvalidInput for a file that is not a members list (empty, no email column, unknown
    columns, not UTF-8, broken CSV); that may happen part-way through a long file, so
    read the whole plan before applying."""
    groups = groups_by_name(session)
    for rows in parsed_chunks(lines, groups, clock, chunk_size):
        yield from classify(session, suppression_key, rows)


def classify(session: Session, key: bytes, rows: list[ParsedRow]) -> list[RowOutcome]:
    """Each row's outcome, a chunk's addresses looked up in two queries: the suppression hashes (C3)
    and the member keys."""
    keys = [row.email_key for row in rows if row.usable]
    hashes = {address_hash(key, k): k for k in keys}
    suppressed: set[str] = set()
    existing: set[str] = set()
    if keys:
        suppressed = {
            hashes[h]
            for h in session.scalars(select(Suppression.address_hash).where(Suppression.address_hash.in_(list(hashes))))
        }
        existing = set(session.scalars(select(Member.email_key).where(Member.email_key.in_(keys))))
    outcomes = []
    for row in rows:
        if row.duplicate_of is not None:
            outcomes.append(RowOutcome(row.line, row.shown_email, Outcome.DUPLICATE, duplicate_of=row.duplicate_of))
        elif row.invalid:
            outcomes.append(RowOutcome(row.line, row.shown_email, Outcome.INVALID, row.invalid))
        elif row.email_key in suppressed:
            # Any suppression, erasure included: an import is not the person re-joining.
            outcomes.append(RowOutcome(row.line, row.shown_email, Outcome.SUPPRESSED))
        elif row.email_key in existing:
            outcomes.append(RowOutcome(row.line, row.shown_email, Outcome.ALREADY_ON_LIST))
        elif row.left:
            outcomes.append(RowOutcome(row.line, row.shown_email, Outcome.NEW_UNSUBSCRIBED))
        elif row.evidence is not None:
            outcomes.append(RowOutcome(row.line, row.shown_email, Outcome.NEW_MEMBER_WITH_EVIDENCE))
        else:
            outcomes.append(RowOutcome(row.line, row.shown_email, Outcome.NEW_PENDING))
    return outcomes
