"""Reading a members file (J6): strict UTF-8, the columns, and each row checked without the database.

Streams: lines are decoded one at a time and rows handed on in chunks, so memory does not
grow with the file (only the addresses seen, to find repeats). A file that is not a
members list raises InvalidInput; a bad row is kept as a ParsedRow with its problem."""

from __future__ import annotations

import codecs
import csv
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, BinaryIO

from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.errors import InvalidInput
from mailer.members.addresses import MAX_ADDRESS_LENGTH, normalise_address
from mailer.members.membership import MAX_NAME_LENGTH, clean_name
from mailer.models import Group, MemberStatus, SocialMedia

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
COLUMNS_HELP = "The columns can be: " + ", ".join(EXPORT_COLUMNS) + "."

CHUNK_SIZE = 500  # rows looked up (and, when applying, written and committed) together
MAX_SOURCE_LENGTH = 1000
MAX_WORDING_LENGTH = 5000
MAX_SHOWN_EMAIL = 120

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """Stop a spreadsheet running a cell as a formula: prefix a quote to = + - @ tab CR starts."""
    return "'" + cell if cell and cell[0] in FORMULA_STARTS else cell


def unneutralise(cell: str) -> str:
    """Undo neutralise(): a quote followed by a formula character is ours, not the data's."""
    return cell[1:] if len(cell) > 1 and cell[0] == "'" and cell[1] in FORMULA_STARTS else cell


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


def read_file_lines(path: os.PathLike[str] | str) -> Iterator[str]:
    """read_lines over a file on disk, closed when the lines run out (or the generator is dropped)."""
    with open(path, "rb") as stream:
        yield from read_lines(stream)


@dataclass(frozen=True)
class GroupRef:
    """A group as an import names it: plain values, not ORM objects, so they outlive each chunk's commit."""

    id: int
    name: str


def groups_by_name(session: Session) -> dict[str, GroupRef]:
    """Every group by its case-folded name, in the order the join form lists them."""
    rows = session.execute(select(Group.id, Group.name).order_by(Group.position, Group.id)).all()
    return {name.casefold(): GroupRef(group_id, name) for group_id, name in rows}


@dataclass(frozen=True)
class ParsedRow:
    """One row as the file gives it, checked without the database.

    `invalid` is the reason a bad row is skipped, or ''; `duplicate_of` the line that had the
    same address first, or None. Either way the other fields are not filled in."""

    line: int
    shown_email: str
    email: str = ""
    email_key: str = ""
    name: str = ""
    group_ids: tuple[int, ...] = ()
    social_media: SocialMedia = SocialMedia.PREFER_NOT_TO_SAY
    evidence: dict[str, str] | None = None
    left: bool = False
    invalid: str = ""
    duplicate_of: int | None = None

    @property
    def usable(self) -> bool:
        return not self.invalid and self.duplicate_of is None


def parsed_chunks(
    lines: Iterable[str], groups: dict[str, GroupRef], clock: Clock, chunk_size: int = CHUNK_SIZE
) -> Iterator[list[ParsedRow]]:
    """The file's rows in chunks of `chunk_size`, blank lines left out.

    Raises InvalidInput for a file that is not a members list (empty, no email column, unknown
    or repeated columns, no rows, not UTF-8, broken CSV), possibly after earlier chunks."""
    reader = csv.reader(lines, strict=True)
    columns = read_header(reader)
    width = len(columns)
    index = {name: i for i, name in enumerate(columns) if name}
    seen: dict[str, int] = {}  # address key -> first line: the only state that grows with the file
    addresses = AddressNormaliser()
    today = clock.now().date()
    chunk: list[ParsedRow] = []
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
        chunk.append(parse_row(cells, line, width, index, groups, seen, today, addresses))
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
    elif not rows_read:
        raise InvalidInput(
            "The file has a row of column names but no members under it, so nothing was imported."
        )


def read_header(reader: Any) -> list[str]:
    """The column names of the first non-blank row, as an import knows them ('' for a blank heading).

    Raises InvalidInput for an empty file, no email column, unknown or repeated columns."""
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                break
        else:
            raise InvalidInput("The file is empty, so nothing was imported. Choose the file with your members in it.")
    except csv.Error as exc:
        raise InvalidInput(f"The file could not be read as CSV ({exc}), so nothing was imported.") from None
    columns = [column_name(cell) for cell in cells]
    named = [c for c in columns if c]
    unknown = [cell.strip() for cell, c in zip(cells, columns, strict=True) if c and c not in IMPORT_COLUMNS]
    if "email" not in named:
        raise InvalidInput(
            "The file has no email column, so nothing was imported. The first row must name the columns, "
            "and one of them must be called email. " + COLUMNS_HELP
        )
    if unknown:
        raise InvalidInput(
            f"The file has columns this import does not know: {', '.join(unknown)}. Nothing was imported. "
            "Remove or rename them. " + COLUMNS_HELP
        )
    repeated = sorted({c for c in named if named.count(c) > 1})
    if repeated:
        raise InvalidInput(f"The file has the column {', '.join(repeated)} more than once. Nothing was imported.")
    return columns


def column_name(cell: str) -> str:
    """A heading as a column name: lower case, spaces and hyphens as underscores, aliases resolved."""
    name = re.sub(r"[\s\-]+", "_", cell.strip().removeprefix("\ufeff").strip().lower())
    return COLUMN_ALIASES.get(name, name)


def parse_row(
    cells: list[str],
    line: int,
    width: int,
    index: dict[str, int],
    groups: dict[str, GroupRef],
    seen: dict[str, int],
    today: date,
    addresses: AddressNormaliser,
) -> ParsedRow:
    """One row's cells checked by the same rules as the join form; `seen` gains its address."""

    def cell(column: str) -> str:
        i = index.get(column)
        return unneutralise(cells[i]) if i is not None and i < len(cells) else ""

    raw_email = cell("email").strip()
    shown = raw_email[:MAX_SHOWN_EMAIL]

    def invalid(reason: str) -> ParsedRow:
        return ParsedRow(line, shown, invalid=reason)

    if len(cells) > width and any(c.strip() for c in cells[width:]):
        return invalid(f"the row has {len(cells)} cells but there are only {width} columns")
    if not raw_email:
        return invalid("there is no email address")
    try:
        email, key = addresses.normalise(raw_email)
    except InvalidInput:
        return invalid("the email address is not valid")
    if key in seen:
        return ParsedRow(line, shown, duplicate_of=seen[key])
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

    evidence, problem = parse_evidence(index, cell, today)
    if problem:
        return invalid(problem)
    return ParsedRow(
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


def parse_evidence(
    index: dict[str, int], cell: Callable[[str], str], today: date
) -> tuple[dict[str, str] | None, str]:
    """(the row's evidence exactly as given, or None; the problem with it, or '')."""
    given = {column: cell(column) for column in EVIDENCE_COLUMNS if column in index}
    if not any(value.strip() for value in given.values()):
        return None, ""
    when, source = given.get("consent_date", "").strip(), given.get("consent_source", "").strip()
    if not when or not source:
        return None, "consent evidence needs both a consent_date and a consent_source"
    parsed = parse_date(when)
    if parsed is None:
        return None, "the consent_date is not a date (write it like 2025-09-14 or 14/09/2025)"
    if parsed > today:
        return None, "the consent_date is in the future"
    if len(source) > MAX_SOURCE_LENGTH:
        return None, f"the consent_source is longer than {MAX_SOURCE_LENGTH} characters"
    if len(given.get("consent_wording", "")) > MAX_WORDING_LENGTH:
        return None, f"the consent_wording is longer than {MAX_WORDING_LENGTH} characters"
    return given, ""


def parse_date(text: str) -> date | None:
    """A consent date as people write them: ISO 8601, 14/09/2025, 14 September 2025 or 14 Sep 2025."""
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
