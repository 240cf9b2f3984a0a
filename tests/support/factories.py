"""Rows for tests that need many members quickly; journeys go through the pages instead."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from mailer.admins.accounts import create_admin
from mailer.clock import FrozenClock
from mailer.extensions import db
from mailer.models import Group, Member, MemberStatus, SocialMedia
from support.web import csrf_token

ADMIN_EMAIL = "admin@forum.example"
ADMIN_PASSWORD = "a long test password"


def add_member(
    email: str,
    *,
    clock: FrozenClock,
    status: MemberStatus = MemberStatus.MEMBER,
    groups: list[int] | None = None,
    social_media: SocialMedia = SocialMedia.YES,
    name: str = "",
) -> int:
    """Insert one member (inside an app context) and return their id."""
    now = clock.now()
    member = Member(
        email=email,
        email_key=email.lower(),
        name=name or email.split("@")[0].title(),
        status=status,
        social_media=social_media,
        token_version=1,
        bounce_count=0,
        created_at=now,
        updated_at=now,
        confirmed_at=now if status is MemberStatus.MEMBER else None,
    )
    member.groups = list(db.session.scalars(select(Group).where(Group.id.in_(groups or []))))
    db.session.add(member)
    db.session.commit()
    return member.id


def add_members(
    app: Any, clock: FrozenClock, count: int, *, prefix: str = "member", groups: list[int] | None = None
) -> list[int]:
    """Insert `count` confirmed members in one transaction."""
    with app.app_context():
        now = clock.now()
        group_rows = list(db.session.scalars(select(Group).where(Group.id.in_(groups or []))))
        members = [
            Member(
                email=f"{prefix}{i:05d}@example.org", email_key=f"{prefix}{i:05d}@example.org", name=f"Member {i}",
                status=MemberStatus.MEMBER, social_media=SocialMedia.YES, token_version=1, bounce_count=0,
                created_at=now, updated_at=now, confirmed_at=now, groups=list(group_rows),
            )
            for i in range(count)
        ]
        db.session.add_all(members)
        db.session.commit()
        return [m.id for m in members]


def logged_in_admin(app: Any, clock: FrozenClock) -> Any:
    """A test client logged in as an admin through the real login form."""
    with app.app_context():
        create_admin(db.session, ADMIN_EMAIL, ADMIN_PASSWORD, clock=clock)
        db.session.commit()
    client = app.test_client()
    page = client.get("/admin/login")
    response = client.post(
        "/admin/login",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return client


def admin_post(client: Any, page_path: str, action_path: str, data: dict[str, Any] | None = None) -> Any:
    """POST a form found on `page_path` (for its CSRF token) to `action_path`.

    "Send now" and "Schedule" go through the check page as an admin does (issue 18): its GET, then its button."""
    if re.search(r"/announcements/\d+/(send-now|schedule)$", action_path):
        return confirm_on_check_page(client, action_path, data)
    token = csrf_token(client.get(page_path).get_data(as_text=True))
    return client.post(action_path, data={"csrf_token": token, **(data or {})})


CHECK_TOKEN = re.compile(r'name="check" value="([^"]+)"')


def confirm_on_check_page(client: Any, action_path: str, data: dict[str, Any] | None = None) -> Any:
    """Open the check page for `action_path` (.../send-now or .../schedule with send_date and send_time) and press
    its "Send to N members" / "Schedule for N members" button; without one (nobody, gaps), the check page itself."""
    base, _, action = action_path.rpartition("/")
    query = {"action": action, **(data or {})}
    page = client.get(f"{base}/check", query_string=query)
    html = page.get_data(as_text=True)
    found = CHECK_TOKEN.search(html)
    if page.status_code != 200 or found is None:
        return page
    return client.post(action_path, data={"csrf_token": csrf_token(html), "check": found.group(1)})


def compose(
    client: Any, *, subject: str, body: str, groups: list[int] | None = None, only_no_social: bool = False
) -> int:
    """Write a draft through the compose form; returns its id."""
    data: dict[str, Any] = {"subject": subject, "body": body, "groups": [str(g) for g in groups or []]}
    if only_no_social:
        data["only_without_social_media"] = "y"
    response = admin_post(client, "/admin/announcements/new", "/admin/announcements/new", data)
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def due_announcement(app: Any, clock: FrozenClock, *, subject: str = "News", body: str = "# News\n\nHello.",
                     group_ids: list[int] | None = None) -> int:
    """An announcement scheduled for now, made through the domain (the pages are tested elsewhere)."""
    from mailer.announcements.lifecycle import AnnouncementDraft, create_announcement, send_announcement_now

    with app.app_context():
        item = create_announcement(
            db.session, AnnouncementDraft(subject=subject, body_markdown=body, group_ids=group_ids or []),
            admin_id=None, clock=clock,
        )
        send_announcement_now(db.session, item, clock=clock)
        db.session.commit()
        return item.id


def link_key_of(app: Any, member_id: int) -> str:
    """The member's random link key, which every link names instead of the id (issue 15)."""
    with app.app_context():
        key = db.session.scalar(select(Member.link_key).where(Member.id == member_id))
        db.session.remove()
    assert key, f"no member {member_id}"
    return key
