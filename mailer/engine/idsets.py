"""`column IN (ids)` for the engine's per-batch statements.

On PostgreSQL the ids go as one array parameter (`= ANY(%s)`): the statement's text is the same
for any number of ids, so psycopg parses it once and prepares it, where a hundred-parameter IN
list is a new statement to render, parse and plan for every batch. SQLite has no arrays: IN."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Integer, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql.elements import ColumnElement


def in_ids(
    session: Session, column: ColumnElement[int] | QueryableAttribute[int], ids: Collection[int]
) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(Integer)))
    return column.in_(ids)
