"""The base class every table subclasses: Flask-SQLAlchemy's db.Model, seen by mypy as the typed DeclarativeBase.

db.Model is made at run time (a subclass of extensions.Base with Flask-SQLAlchemy's mixins), so mypy cannot
use it as a base class ("Name db.Model is not defined", python/mypy#8603). The tables use no Flask-SQLAlchemy
addition (no Model.query; every __tablename__ is written out), so checking them against Base is exact."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailer.extensions import Base, db

if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model

__all__ = ["Model"]
