"""Column types every table uses: aware UTC times, enums stored as plain strings."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import DateTime, Enum, Table, TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which has no time zones) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where aware UTC is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_column(cls: type[enum.Enum], length: int = 20) -> Enum:
    """Store StrEnum values as plain strings, portable between SQLite and PostgreSQL."""
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
    )


def table_of(model: type[Any]) -> Table:
    """The Table a model is mapped to, for Core bulk inserts (executemany, no ORM objects made).

    Declarative types `__table__` as a FromClause; for these plain models it is always a Table."""
    return cast(Table, model.__table__)
