"""The bounces page (issue 8): recent bounces and complaints, members near the threshold, unmatched DSNs.

Read-only and thin: the lists come from mailer.bounces."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app, render_template

from ... import bounces
from ...announcements import to_london
from ...extensions import db
from ..context import clock
from . import bp

KIND_WORDS = {
    "permanent": "Permanent failure",
    "temporary": "Temporary failure (not counted)",
    "complaint": "Marked as spam (unsubscribed)",
}


@bp.get("/bounces")
def bounces_page():  # type: ignore[no-untyped-def]
    config = current_app.config
    policy = bounces.BouncePolicy(
        threshold=int(config["MAILER_BOUNCE_THRESHOLD"]),
        decay=timedelta(days=float(config["MAILER_BOUNCE_DECAY_DAYS"])),
    )
    return render_template(
        "admin/bounces.html",
        recent=bounces.list_recent_bounces(db.session, limit=100),
        near=bounces.list_members_near_threshold(db.session, policy=policy, clock=clock(), limit=100),
        unmatched=bounces.list_unmatched_messages(db.session, limit=50),
        waiting=bounces.count_unprocessed(db.session),
        threshold=policy.threshold,
        decay_days=policy.decay.days,
        kind_words=KIND_WORDS,
        to_london=to_london,
    )
