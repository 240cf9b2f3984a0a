"""Integers from a request (query arguments, form fields, URL parts), checked in one place.

Every id column is a 32-bit integer on PostgreSQL, and SQLite's driver overflows past 64 bits:
a number no column can hold must be a clear 4xx, never an error from the database driver (a 500
whose log line used to carry the statement's other values). So nothing from a request reaches a
query as an int without passing through here."""

from __future__ import annotations

import re
from typing import Any

from flask import request
from werkzeug.routing import IntegerConverter

from mailer.errors import InvalidInput

MAX_ID = 2**31 - 1  # PostgreSQL's integer; the smaller of the two databases' limits
_DIGITS = re.compile(r"[0-9]{1,10}")  # plain ASCII digits: int() would also take " 1_0 " and Arabic-Indic digits


def parse_int(raw: str, *, minimum: int = 1, maximum: int = MAX_ID) -> int:
    """`raw` as an int in [minimum, maximum]; ValueError for anything else (not a number, too big, too small)."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not _DIGITS.fullmatch(text):
        raise ValueError("not a whole number in range")
    value = int(text)
    if not minimum <= value <= maximum:
        raise ValueError("not a whole number in range")
    return value


def database_id(value: Any) -> int:
    """WTForms `coerce=` for a choice that is a row id: a value no id column holds is a ValueError,
    so the field gets an error and keeps no data (nothing out of range reaches a query)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return parse_int(value)


def int_arg(name: str, *, default: int | None = None, minimum: int = 1, maximum: int = MAX_ID) -> int | None:
    """The query argument `name` as an int in [minimum, maximum]; `default` when it is absent or empty.

    Raises InvalidInput (a 400 page) for any other value."""
    raw = request.args.get(name, "")
    if raw == "":
        return default
    try:
        return parse_int(raw, minimum=minimum, maximum=maximum)
    except ValueError:
        raise InvalidInput(
            "A number in this page’s address is not right, so the page cannot be shown. "
            "Go back and follow the link again."
        ) from None


class DatabaseIdConverter(IntegerConverter):
    """<int:...> in a URL is a row id: a number no integer column can hold finds no page (404),
    instead of overflowing in the database driver (a 500)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)
