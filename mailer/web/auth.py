"""Flask-Login wiring: load an admin from the session, revocable by bumping session_version."""

from __future__ import annotations

from ..extensions import db, login_manager
from ..models import Admin


@login_manager.user_loader
def load_admin(user_id: str) -> Admin | None:
    try:
        admin_id, version = (int(part) for part in user_id.split(":", 1))
    except ValueError:
        return None
    admin = db.session.get(Admin, admin_id)
    if admin is None or admin.session_version != version:
        return None
    return admin
