"""CSV export and consent-safe import of members (J6, C1, C3).

Both stream: export is a generator of lines read in keyset batches, import reads the
file row by row and looks rows up in the database a chunk at a time, so memory does
not grow with the file. An import never bypasses consent: a row without consent
evidence becomes a pending member who is asked to confirm by email (spread out through
the outbox), a row with evidence becomes a member with an `imported` consent event that
keeps the evidence as the file gave it, and a suppressed address is never added.
Nothing that is already on the list is changed, so running a file twice is harmless.

No Flask here: callers pass a session, a clock and ImportSettings, and turn
InvalidInput (a file that cannot be read as a members list) into a message."""

from __future__ import annotations

import codecs
import csv
import enum
import io
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from mailer.clock import Clock
from mailer.errors import InvalidInput
from mailer.members.addresses import MAX_ADDRESS_LENGTH, address_hash, normalise_address
from mailer.members.membership import MAX_NAME_LENGTH, clean_name
from mailer.models import (
    ConsentAction,
    ConsentEvent,
    ConsentMethod,
    Group,
    MailKind,
    Member,
    MemberStatus,
    OutboxMessage,
    OutboxState,
    SocialMedia,
    Suppression,
    member_group,
    new_link_key,
)
from mailer.transaction import transaction
from mailer.uploads import PARTIAL_SUFFIX, make_directory, stream_chunks, write_file

log = logging.getLogger(__name__)

EXPORT_COLUMNS = (
    "email",
    "name",
    "status",
    "groups",
    "social_media",
    "joined_at",
    "consent_date",
    "consent_source",
    "consent_wording",
)
EVIDENCE_COLUMNS = ("consent_date", "consent_source", "consent_wording")
# Every column an import understands: what the export writes, so an export imports as it is.
# status and joined_at are read only to keep people who left from being asked again.
IMPORT_COLUMNS = frozenset(EXPORT_COLUMNS)
COLUMN_ALIASES = {"email_address": "email", "e_mail": "email", "e_mail_address": "email", "group": "groups"}

CHUNK_SIZE = 500  # rows looked up (and, when applying, written and committed) together
MAX_SOURCE_LENGTH = 1000
MAX_WORDING_LENGTH = 5000
MAX_SHOWN_EMAIL = 120
CONFIRMED_ON_THE_WEBSITE = "Joined on the website and confirmed by email link"

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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


@dataclass(frozen=True)
class ImportSettings:
    suppression_key: bytes
    confirmations_per_minute: float = 60.0
    chunk_size: int = CHUNK_SIZE



@dataclass
class ImportSummary:
    """Counts for every outcome, the first rows and the first problems: what a page or a terminal shows.

    Bounded however long the file is; `total` and `counts` cover every row."""

    keep_rows: int = 200
    keep_problems: int = 500
    total: int = 0
    counts: dict[Outcome, int] = field(default_factory=lambda: {o: 0 for o in Outcome})
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
        return json.dumps(
            {
                "total": self.total,
                "counts": {o.value: n for o, n in self.counts.items()},
                "rows": [_row_dict(r) for r in self.rows],
                "problems": [_row_dict(r) for r in self.problems],
                "first_confirmation_at": _iso(self.first_confirmation_at),
                "last_confirmation_at": _iso(self.last_confirmation_at),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ImportSummary:
        data = json.loads(text)
        summary = cls(total=data["total"], counts={Outcome(k): v for k, v in data["counts"].items()})
        summary.rows = [_row_from(r) for r in data["rows"]]
        summary.problems = [_row_from(r) for r in data["problems"]]
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


# --- reading a file ------------------------------------------------------------


def read_lines(stream: BinaryIO) -> Iterator[str]:
    """Decode an uploaded file line by line as strict UTF-8 (a byte-order mark is allowed).

    Raises InvalidInput naming the line when the bytes are not UTF-8, which is what a
    spreadsheet saved as 'CSV' in a legacy encoding gives."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    number = 0
    try:
        for number, raw in enumerate(stream, start=1):
            text = decoder.decode(raw)
            if number == 1:
                text = text.removeprefix("\ufeff")
            yield text
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail
    except UnicodeDecodeError:
        raise InvalidInput(
            f"The file is not saved as UTF-8 text (the problem is on line {max(number, 1)}), so nothing was imported. "
            "In your spreadsheet, choose Save As and pick “CSV UTF-8 (comma delimited)”, then upload that file."
        ) from None


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
    groups = _groups_by_name(session)
    for rows in _parsed_chunks(lines, groups, clock, chunk_size):
        yield from _classify(session, suppression_key, rows)


def apply_import(
    session: Session,
    lines: Iterable[str],
    *,
    settings: ImportSettings,
    clock: Clock,
    admin_id: int | None = None,
    on_row: Callable[[RowOutcome], None] | None = None,
) -> ImportSummary:
    """Import these lines: add new people by the consent rules, leave everyone else alone.

    Writes and commits a chunk at a time (one transaction for 100,000 rows would hold
    the write lock and the memory for minutes), so unlike other domain functions this
    one commits. Each chunk is looked up again just before it is written, so the result
    matches plan_import unless the list changed in between; a chunk that loses a race
    with someone joining through the form is looked up and written again.
    Confirmation requests are queued with send times spread at
    settings.confirmations_per_minute, after any already queued, so a big import does
    not flood the mail relay. Call plan_import over the same file first: a file that
    turns out to be unreadable part-way raises InvalidInput after earlier chunks were
    committed (the web and command-line imports always preview the whole file first)."""
    now = clock.now()
    groups = _groups_by_name(session)
    spacing = _spacing(settings.confirmations_per_minute)
    next_send = _first_send_time(session, now, spacing)
    summary = ImportSummary(keep_rows=200, keep_problems=500)
    for rows in _parsed_chunks(lines, groups, clock, settings.chunk_size):
        for attempt in (1, 2):
            try:
                with transaction(session):
                    outcomes = _classify(session, settings.suppression_key, rows)
                    send_times = _write(session, rows, outcomes, now=now, first_send=next_send, spacing=spacing,
                                        admin_id=admin_id)
                break
            except IntegrityError:
                if attempt == 2:
                    raise
                log.info("import: a chunk met a concurrent signup; looking it up again")
        if send_times:
            summary.first_confirmation_at = summary.first_confirmation_at or send_times[0]
            summary.last_confirmation_at = send_times[-1]
            next_send = send_times[-1] + spacing
        for outcome in outcomes:
            summary.add(outcome)
            if on_row is not None:
                on_row(outcome)
    who = f"admin {admin_id}" if admin_id else "the command line"
    log.info("import by %s: %s", who, " ".join(summary.describe(applied=True)))
    return summary


# --- export ----------------------------------------------------------------------


def export_lines(session: Session, *, batch_size: int = 1000, bom: bool = False) -> Iterator[str]:
    """Every member as CSV lines (RFC 4180, CRLF), header first, read in keyset batches.

    Columns are the ones an import reads, so an export imports into another copy as it
    is: members keep their consent evidence (the confirmation on the website, or the
    evidence they were imported with). Cells a spreadsheet would run as a formula get a
    leading apostrophe, which an import takes off again. `bom` helps Excel see UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells: Iterable[str]) -> str:
        writer.writerow([neutralise(cell) for cell in cells])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

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
        evidence = _export_evidence(session, ids)
        for m in members:
            names = [group_names[g] for g in sorted(groups.get(m.id, []), key=group_order.__getitem__)]
            given = evidence.get(m.id, ("", "", "")) if m.status is MemberStatus.MEMBER else ("", "", "")
            joined = _iso(m.created_at) or ""
            yield line([m.email, m.name, m.status.value, ";".join(names), m.social_media.value, joined, *given])
        after = ids[-1]


def neutralise(cell: str) -> str:
    """Stop a spreadsheet running a cell as a formula: prefix a quote to = + - @ tab CR starts."""
    return "'" + cell if cell and cell[0] in FORMULA_STARTS else cell


def unneutralise(cell: str) -> str:
    """Undo neutralise(): a quote followed by a formula character is ours, not the data's."""
    return cell[1:] if len(cell) > 1 and cell[0] == "'" and cell[1] in FORMULA_STARTS else cell


# --- stored uploads (the web import previews, then applies, the same file) --------------

_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
UPLOAD_KEEP = timedelta(hours=24)


def new_upload_path(directory: Path) -> tuple[str, Path]:
    """A random, unguessable name for an uploaded file in `directory` (created if needed)."""
    make_directory(directory, mode=0o700)
    import_id = secrets.token_urlsafe(16)
    return import_id, directory / f"{import_id}.csv"


def save_upload(directory: Path, stream: BinaryIO) -> tuple[str, Path]:
    """Store an uploaded CSV under a new random id; returns (id, path).

    All or nothing: raises StorageFull when the disk is full, and no partial file is left."""
    import_id, path = new_upload_path(directory)
    write_file(path, stream_chunks(stream))
    return import_id, path


def save_result(directory: Path, import_id: str, summary: ImportSummary) -> None:
    """Keep what an applied import did, without addresses, for the result page (a day at most).

    Raises StorageFull when the disk is full; nothing partial is left."""
    write_file(result_path(directory, import_id), [summary.to_json().encode("utf-8")])


def upload_path(directory: Path, import_id: str) -> Path:
    """The stored upload for this id. Raises InvalidInput when it is gone (applied, cancelled, expired)."""
    path = directory / f"{import_id}.csv"
    if not _UPLOAD_ID.match(import_id or "") or not path.is_file():
        raise InvalidInput(
            "That import is no longer waiting: it was applied, cancelled or is more than a day old. "
            "Upload the file again."
        )
    return path


def result_path(directory: Path, import_id: str) -> Path:
    if not _UPLOAD_ID.match(import_id or ""):
        raise InvalidInput("There is no such import.")
    return directory / f"{import_id}.result.json"


def discard_upload(directory: Path, import_id: str) -> None:
    if _UPLOAD_ID.match(import_id or ""):
        (directory / f"{import_id}.csv").unlink(missing_ok=True)


def remove_stale_uploads(directory: Path, *, clock: Clock, keep: timedelta = UPLOAD_KEEP) -> int:
    """Delete uploads, results and unfinished writes last changed more than `keep` ago: an
    upload lists people nobody imported. Daily housekeeping and `flask purge` call this."""
    if not directory.is_dir():
        return 0
    cutoff = (clock.now() - keep).timestamp()
    removed = 0
    for path in directory.iterdir():
        if path.suffix not in (".csv", ".json", PARTIAL_SUFFIX) or not path.is_file():
            continue
        try:
            stale = path.stat().st_mtime < cutoff
        except FileNotFoundError:  # applied or cancelled meanwhile
            continue
        if stale:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


# --- internals -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """One parsed row: what the file says, or the problem found without the database."""

    line: int
    shown_email: str
    email: str = ""
    email_key: str = ""
    name: str = ""
    group_ids: tuple[int, ...] = ()
    social_media: SocialMedia = SocialMedia.PREFER_NOT_TO_SAY
    evidence: dict[str, str] | None = None
    left: bool = False
    problem: RowOutcome | None = None


def _parsed_chunks(
    lines: Iterable[str], groups: dict[str, _GroupRef], clock: Clock, chunk_size: int
) -> Iterator[list[_Row]]:
    reader = csv.reader(lines, strict=True)
    columns = _read_header(reader)
    width = len(columns)
    index = {name: i for i, name in enumerate(columns) if name}
    seen: dict[str, int] = {}  # address key -> first line: the only state that grows with the file
    addresses = AddressNormaliser()
    today = clock.now().date()
    chunk: list[_Row] = []
    rows_read = 0
    last_line = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InvalidInput(
                f"Line {reader.line_num} of the file could not be read as CSV ({exc}), so nothing was imported."
            ) from None
        line = last_line + 1
        last_line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue  # blank lines, often at the end of a spreadsheet's export
        rows_read += 1
        chunk.append(_parse_row(cells, line, width, index, groups, seen, today, addresses))
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
    elif not rows_read:
        raise InvalidInput(
            "The file has a row of column names but no members under it, so nothing was imported."
        )


def _read_header(reader: Any) -> list[str]:
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                break
        else:
            raise InvalidInput("The file is empty, so nothing was imported. Choose the file with your members in it.")
    except csv.Error as exc:
        raise InvalidInput(f"The file could not be read as CSV ({exc}), so nothing was imported.") from None
    columns = [_column_name(cell) for cell in cells]
    named = [c for c in columns if c]
    unknown = [cell.strip() for cell, c in zip(cells, columns, strict=True) if c and c not in IMPORT_COLUMNS]
    if "email" not in named:
        raise InvalidInput(
            "The file has no email column, so nothing was imported. The first row must name the columns, "
            "and one of them must be called email. " + _COLUMNS_HELP
        )
    if unknown:
        raise InvalidInput(
            f"The file has columns this import does not know: {', '.join(unknown)}. Nothing was imported. "
            "Remove or rename them. " + _COLUMNS_HELP
        )
    repeated = sorted({c for c in named if named.count(c) > 1})
    if repeated:
        raise InvalidInput(f"The file has the column {', '.join(repeated)} more than once. Nothing was imported.")
    return columns


_COLUMNS_HELP = "The columns can be: " + ", ".join(EXPORT_COLUMNS) + "."


def _column_name(cell: str) -> str:
    name = re.sub(r"[\s\-]+", "_", cell.strip().removeprefix("\ufeff").strip().lower())
    return COLUMN_ALIASES.get(name, name)


def _parse_row(
    cells: list[str],
    line: int,
    width: int,
    index: dict[str, int],
    groups: dict[str, _GroupRef],
    seen: dict[str, int],
    today: date,
    addresses: AddressNormaliser,
) -> _Row:
    def cell(column: str) -> str:
        i = index.get(column)
        return unneutralise(cells[i]) if i is not None and i < len(cells) else ""

    raw_email = cell("email").strip()
    shown = raw_email[:MAX_SHOWN_EMAIL]

    def invalid(reason: str) -> _Row:
        return _Row(line, shown, problem=RowOutcome(line, shown, Outcome.INVALID, reason))

    if len(cells) > width and any(c.strip() for c in cells[width:]):
        return invalid(f"the row has {len(cells)} cells but there are only {width} columns")
    if not raw_email:
        return invalid("there is no email address")
    try:
        email, key = addresses.normalise(raw_email)
    except InvalidInput:
        return invalid("the email address is not valid")
    if key in seen:
        return _Row(line, shown, problem=RowOutcome(line, shown, Outcome.DUPLICATE, duplicate_of=seen[key]))
    seen[key] = line

    raw_name = cell("name")
    try:
        name = clean_name(raw_name)
    except InvalidInput:
        if len(raw_name.strip()) > MAX_NAME_LENGTH:
            return invalid(f"the name is longer than {MAX_NAME_LENGTH} characters")
        return invalid("the name contains line breaks or control characters")

    group_ids: list[int] = []
    for group_name in (part.strip() for part in cell("groups").split(";")):
        if not group_name:
            continue
        group = groups.get(group_name.casefold())
        if group is None:
            known = "; ".join(g.name for g in groups.values())
            return invalid(f"there is no group called “{group_name[:100]}” (the groups are: {known})")
        if group.id not in group_ids:
            group_ids.append(group.id)

    answer = re.sub(r"[\s\-]+", "_", cell("social_media").strip().lower())
    if answer and answer not in {s.value for s in SocialMedia}:
        return invalid("social_media must be yes, no or prefer_not_to_say (or left blank)")
    social_media = SocialMedia(answer) if answer else SocialMedia.PREFER_NOT_TO_SAY

    status = cell("status").strip().lower()
    if status not in ("", MemberStatus.PENDING.value, MemberStatus.MEMBER.value, MemberStatus.UNSUBSCRIBED.value):
        return invalid("status must be pending, member or unsubscribed (or left blank)")

    evidence, problem = _evidence(index, cell, today)
    if problem:
        return invalid(problem)
    return _Row(
        line,
        shown,
        email=email,
        email_key=key,
        name=name,
        group_ids=tuple(group_ids),
        social_media=social_media,
        evidence=evidence,
        left=status == MemberStatus.UNSUBSCRIBED.value,
    )


def _evidence(index: dict[str, int], cell: Callable[[str], str], today: date) -> tuple[dict[str, str] | None, str]:
    """(the row's evidence exactly as given, or None; the problem with it, or '')."""
    given = {column: cell(column) for column in EVIDENCE_COLUMNS if column in index}
    if not any(value.strip() for value in given.values()):
        return None, ""
    when, source = given.get("consent_date", "").strip(), given.get("consent_source", "").strip()
    if not when or not source:
        return None, "consent evidence needs both a consent_date and a consent_source"
    parsed = _parse_date(when)
    if parsed is None:
        return None, "the consent_date is not a date (write it like 2025-09-14 or 14/09/2025)"
    if parsed > today:
        return None, "the consent_date is in the future"
    if len(source) > MAX_SOURCE_LENGTH:
        return None, f"the consent_source is longer than {MAX_SOURCE_LENGTH} characters"
    if len(given.get("consent_wording", "")) > MAX_WORDING_LENGTH:
        return None, f"the consent_wording is longer than {MAX_WORDING_LENGTH} characters"
    return given, ""


def _parse_date(text: str) -> date | None:
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        pass
    for pattern in ("%d/%m/%Y", "%d %B %Y", "%d %b %Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


class AddressNormaliser:
    """mailer.members.addresses.normalise_address, with each domain's check done once per file.

    A members file repeats a handful of domains thousands of times, and checking the
    domain is most of the cost of checking an address. Plain ASCII addresses (a
    dot-atom before the @, letters, digits, dots and hyphens after) are split, the
    domain checked once by normalise_address itself and remembered, and the two put back
    together the way email-validator does; anything else, and every refusal, goes to
    normalise_address, so the join form and an import always agree on an address and
    its key (tests/unit/test_member_csv.py checks them against each other)."""

    _HOST = re.compile(r"[A-Za-z0-9.\-]+\Z")
    MAX_DOMAINS = 10_000

    def __init__(self) -> None:
        self._domains: dict[str, str | None] = {}

    def normalise(self, raw: str) -> tuple[str, str]:
        candidate = (raw or "").strip()
        local, at, domain = candidate.rpartition("@")
        if (
            at
            and len(candidate) <= MAX_ADDRESS_LENGTH
            and DOT_ATOM_TEXT.match(local)
            and local.lower() not in CASE_INSENSITIVE_MAILBOX_NAMES
            and self._HOST.match(domain)
        ):
            checked = self._domain(domain)
            if checked is not None and checked.isascii():
                email = f"{local}@{checked}"
                return email, email.lower()
        return normalise_address(raw)

    def _domain(self, domain: str) -> str | None:
        if domain not in self._domains:
            if len(self._domains) >= self.MAX_DOMAINS:
                self._domains.clear()
            try:
                self._domains[domain] = normalise_address("a@" + domain)[0].partition("@")[2]
            except InvalidInput:
                self._domains[domain] = None
        return self._domains[domain]


@dataclass(frozen=True)
class _GroupRef:
    id: int
    name: str


def _groups_by_name(session: Session) -> dict[str, _GroupRef]:
    """Plain values, not ORM objects: they outlive the commit after each chunk."""
    rows = session.execute(select(Group.id, Group.name).order_by(Group.position, Group.id)).all()
    return {name.casefold(): _GroupRef(group_id, name) for group_id, name in rows}


def _classify(session: Session, key: bytes, rows: list[_Row]) -> list[RowOutcome]:
    """Look a chunk's addresses up in two queries: the suppression hashes (C3) and the member keys."""
    keys = [row.email_key for row in rows if row.problem is None]
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
        if row.problem is not None:
            outcomes.append(row.problem)
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


def _write(
    session: Session,
    rows: list[_Row],
    outcomes: list[RowOutcome],
    *,
    now: datetime,
    first_send: datetime,
    spacing: timedelta,
    admin_id: int | None,
) -> list[datetime]:
    """Insert one chunk's new people in a few multi-row statements; returns the confirmation send times."""
    new = [(row, outcome.outcome) for row, outcome in zip(rows, outcomes, strict=True) if outcome.outcome in ADDS]
    if not new:
        return []
    send_times: list[datetime] = []
    values = []
    for row, outcome in new:
        send_at = None
        if outcome is Outcome.NEW_PENDING:
            send_at = first_send + spacing * len(send_times)
            send_times.append(send_at)
        values.append(
            {
                "email": row.email,
                "email_key": row.email_key,
                "name": row.name,
                "status": {
                    Outcome.NEW_PENDING: MemberStatus.PENDING,
                    Outcome.NEW_MEMBER_WITH_EVIDENCE: MemberStatus.MEMBER,
                    Outcome.NEW_UNSUBSCRIBED: MemberStatus.UNSUBSCRIBED,
                }[outcome],
                "social_media": row.social_media,
                "token_version": 1,
                "link_key": new_link_key(),
                "bounce_count": 0,
                "created_at": now,
                "updated_at": now,
                "confirmed_at": now if outcome is Outcome.NEW_MEMBER_WITH_EVIDENCE else None,
                "unsubscribed_at": now if outcome is Outcome.NEW_UNSUBSCRIBED else None,
                # The throttle counts from when the request will go, so a resend cannot overtake it.
                "last_confirmation_sent_at": send_at,
            }
        )
    # Core inserts on the tables (the column types still convert enums and UTC times): the ORM's
    # bulk path is several times slower here, and these rows need no ORM objects.
    # No RETURNING: SQLite cannot promise its order for a multi-row insert, and SQLAlchemy falls
    # back to one statement per row; the ids come back in one query on the unique key instead.
    session.execute(insert(Member.__table__), values)
    found = dict(
        session.execute(
            select(Member.email_key, Member.id).where(Member.email_key.in_([v["email_key"] for v in values]))
        ).all()
    )
    ids = [found[v["email_key"]] for v in values]
    links = [{"member_id": i, "group_id": g} for i, (row, _) in zip(ids, new, strict=True) for g in row.group_ids]
    if links:
        session.execute(insert(member_group), links)
    events = [
        {
            "member_id": i,
            "action": (
                ConsentAction.IMPORTED if outcome is Outcome.NEW_MEMBER_WITH_EVIDENCE else ConsentAction.WITHDRAWN
            ),
            "method": ConsentMethod.IMPORT,
            "occurred_at": now,
            "wording_id": None,
            "email": row.email,
            "detail": _event_detail(row, admin_id),
        }
        for i, (row, outcome) in zip(ids, new, strict=True)
        if outcome is not Outcome.NEW_PENDING
    ]
    if events:
        session.execute(insert(ConsentEvent.__table__), events)
    confirmations = [
        {
            "kind": MailKind.CONFIRM,
            "member_id": i,
            "state": OutboxState.PENDING,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": values[position]["last_confirmation_sent_at"],
        }
        for position, (i, (row, outcome)) in enumerate(zip(ids, new, strict=True))
        if outcome is Outcome.NEW_PENDING
    ]
    if confirmations:
        session.execute(insert(OutboxMessage.__table__), confirmations)
    return send_times


def _event_detail(row: _Row, admin_id: int | None) -> dict[str, Any]:
    """The row's evidence unchanged (C1: what they were told, when, how), and where it came from."""
    detail: dict[str, Any] = {"line": row.line, "imported_by_admin_id": admin_id}
    if row.evidence is not None:
        detail["evidence"] = dict(row.evidence)
    if row.left:
        detail["note"] = "the imported file says they left the list"
    return detail


def _spacing(per_minute: float) -> timedelta:
    """Time between two import confirmations; zero or less means no spreading."""
    return timedelta(seconds=60.0 / per_minute) if per_minute > 0 else timedelta(0)


def _first_send_time(session: Session, now: datetime, spacing: timedelta) -> datetime:
    """Now, or after the last confirmation an earlier import queued, so two imports do not double the rate."""
    latest = session.scalar(
        select(func.max(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.kind == MailKind.CONFIRM, OutboxMessage.state == OutboxState.PENDING
        )
    )
    if latest is None or latest < now:
        return now
    return latest + spacing


def _export_evidence(session: Session, member_ids: list[int]) -> dict[int, tuple[str, str, str]]:
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
            found[event.member_id] = (_iso(event.occurred_at) or "", CONFIRMED_ON_THE_WEBSITE, str(wording))
    return found


def _row_dict(row: RowOutcome) -> dict[str, Any]:
    return {"line": row.line, "outcome": row.outcome.value, "reason": row.reason, "duplicate_of": row.duplicate_of}


def _row_from(data: dict[str, Any]) -> RowOutcome:
    return RowOutcome(data["line"], "", Outcome(data["outcome"]), data["reason"], data["duplicate_of"])


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def read_file_lines(path: os.PathLike[str] | str) -> Iterator[str]:
    """read_lines over a file on disk, closed when the lines run out (or the generator is dropped)."""
    with open(path, "rb") as stream:
        yield from read_lines(stream)
