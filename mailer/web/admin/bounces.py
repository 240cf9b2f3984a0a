"""The bounces page (issue 8): recent bounces and complaints, members near the threshold, unmatched DSNs.

Read-only and thin: the lists come from mailer.bounces.records."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from mailer.announcements.lifecycle import to_london
from mailer.bounces import records as bounces
from mailer.extensions import db
from mailer.web.admin import bp
from mailer.web.context import clock, current_settings

KIND_WORDS = {
    "permanent": "Permanent failure",
    "temporary": "Temporary failure (not counted)",
    "complaint": "Marked as spam (unsubscribed)",
}


@bp.get("/bounces")
def bounces_page() -> ResponseReturnValue:
    policy = current_settings().bounce_policy
    return render_template(
        "admin/bounces.html",
        recent=bounces.list_recent_bounces(db.session(), limit=100),
        near=bounces.list_members_near_threshold(db.session(), policy=policy, clock=clock(), limit=100),
        unmatched=bounces.list_unmatched_messages(db.session(), limit=50),
        waiting=bounces.count_unprocessed(db.session()),
        threshold=policy.threshold,
        decay_days=policy.decay.days,
        kind_words=KIND_WORDS,
        to_london=to_london,
    )
