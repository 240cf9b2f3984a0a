"""Settings for unit tests that need no app: the defaults plus a few values, parsed as create_app parses them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailer.config import Defaults
from mailer.settings import Settings

INSTANCE = Path(__file__).resolve().parents[2] / "instance"


def default_config() -> dict[str, Any]:
    """What app.config holds before instance/config.py and FLASK_* (mailer.config.load_config's first step)."""
    config = {name: getattr(Defaults, name) for name in dir(Defaults) if name.isupper()}
    config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    return config


def settings_for(values: dict[str, Any] | None = None, **more: Any) -> Settings:
    return Settings.from_config({**default_config(), **(values or {}), **more}, instance_path=str(INSTANCE))
