"""Members admin (J6) through mailer.members.admin: counts, the dashboard, search, and acting on a member's behalf.

The admin pages themselves are tested in tests/integration/test_member_admin.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from domain.conftest import LINK, Members
from mailer.admins.accounts import create_admin
from mailer.clock import FrozenClock
from mailer.errors import InvalidInput, NotPending, Suppressed
from mailer.mail.outbox import QueuedMail, enqueue_mail, enqueue_mails
from mailer.members import admin, consent, membership
from mailer.members.admin import ResendOutcome
from mailer.members.membership import MembershipPolicy
from mailer.models import (
    Announcement,
    AnnouncementState,
    ConsentAction,
    ConsentEvent,
    ConsentMethod,
    DeliveryState,
    Group,
    MailKind,
    Member,
    MemberStatus,
    OutboxMessage,
    OutboxState,
    Suppression,
)

ADMIN_ID = 7


def three_states(members: Members, session: Session) -> tuple[Member, Member, Member]:
    """A confirmed member in groups 1 and 2, a pending one in group 1, and one who left (group 2)."""
    confirmed = members.join_and_confirm("ann@example.org", name="Ann Archer", group_ids=[1, 2])
    pending = members.join("bob@example.net", name="Bob Baker", group_ids=[1])
    left = members.join_and_confirm("cat@example.org", name="Cat Carter", group_ids=[2])
    membership.withdraw_consent(session, left.link_key, LINK, clock=members.clock)
    session.flush()
    return confirmed, pending, left


# --- counts and the dashboard ---------------------------------------------------------------------------


def test_counts_by_status_and_group(session: Session, members: Members) -> None:
    """Every status is counted (zero included), and each group shows everyone in it and how many are confirmed."""
    assert admin.count_by_status(session) == dict.fromkeys(MemberStatus, 0)
    three_states(members, session)
    assert admin.count_by_status(session) == {
        MemberStatus.MEMBER: 1,
        MemberStatus.PENDING: 1,
        MemberStatus.UNSUBSCRIBED: 1,
    }
    by_group = {c.group_id: (c.total, c.confirmed) for c in admin.count_by_group(session)}
    assert by_group[1] == (2, 1) and by_group[2] == (2, 1)
    assert all(by_group[g] == (0, 0) for g in by_group if g not in (1, 2))
    positions = [session.get(Group, c.group_id).position for c in admin.count_by_group(session)]  # type: ignore[union-attr]
    assert positions == sorted(positions)


def test_dashboard_counts_recent_signups_by_the_clock(session: Session, members: Members, clock: FrozenClock) -> None:
    """Recent signups are those of the last seven days by the given clock, whatever their status now."""
    members.join("old@example.org")
    clock.advance(days=admin.RECENT_SIGNUP_DAYS, minutes=1)
    members.join_and_confirm("new@example.org")
    members.join("newer@example.org")
    dashboard = admin.find_dashboard(session, clock=clock)
    assert (dashboard.recent_signups, dashboard.recent_days) == (2, admin.RECENT_SIGNUP_DAYS)
    assert dashboard.by_status[MemberStatus.PENDING] == 2 and dashboard.by_status[MemberStatus.MEMBER] == 1


def test_dashboard_outbox_health_and_sends(session: Session, members: Members, clock: FrozenClock) -> None:
    """The dashboard splits the outbox into due, later and failed with the oldest due age, and finds the next and last
    send."""
    start = clock.now()
    member = members.join("mail@example.org")  # one confirm mail, due now
    later = QueuedMail(MailKind.TEST, to_address="t@example.org", send_at=start + timedelta(hours=1))
    enqueue_mails(session, [later], clock=clock)
    enqueue_mail(session, MailKind.TEST, to_address="f@example.org", clock=clock)
    session.execute(
        update(OutboxMessage).where(OutboxMessage.to_address == "f@example.org").values(state=OutboxState.FAILED)
    )
    members.announcement("Earlier send", {member.id: DeliveryState.SENT})
    clock.advance(minutes=10)
    last = members.announcement(
        "Last send",
        {member.id: DeliveryState.SENT},
        state=AnnouncementState.SENDING,
    )
    for subject, when in (("Second", start + timedelta(days=2)), ("First", start + timedelta(days=1))):
        session.add(
            Announcement(
                subject=subject,
                body_markdown="x",
                state=AnnouncementState.SCHEDULED,
                scheduled_at=when,
                created_at=start,
                updated_at=start,
            )
        )
    session.flush()

    dashboard = admin.find_dashboard(session, clock=clock)

    assert (dashboard.outbox.due, dashboard.outbox.later, dashboard.outbox.failed) == (1, 1, 1)
    assert dashboard.outbox.oldest_due_at == start and dashboard.outbox.oldest_due_age == timedelta(minutes=10)
    assert dashboard.next_scheduled is not None and dashboard.next_scheduled.subject == "First"
    assert dashboard.last_send is not None
    assert (dashboard.last_send.announcement_id, dashboard.last_send.sent, dashboard.last_send.state) == (
        last.id,
        1,
        AnnouncementState.SENDING,
    )


# --- finding members ------------------------------------------------------------------------------------


def test_search_matches_part_of_name_or_address_ignoring_case(session: Session, members: Members) -> None:
    """Search finds part of a name or an address in any case, and filters by status and group."""
    three_states(members, session)

    def emails(**filters: object) -> list[str]:
        return [m.email for m in admin.list_members(session, **filters).members]  # type: ignore[arg-type]

    assert emails(search="BAKER") == ["bob@example.net"]
    assert emails(search="example.org") == ["cat@example.org", "ann@example.org"]
    assert emails(search="  arch ") == ["ann@example.org"]
    assert emails(status=MemberStatus.PENDING) == ["bob@example.net"]
    assert emails(group_id=2) == ["cat@example.org", "ann@example.org"]
    assert emails(group_id=1, status=MemberStatus.MEMBER) == ["ann@example.org"]
    assert emails(search="nobody") == []


def test_search_treats_wildcards_as_text(session: Session, members: Members) -> None:
    """% and _ in a search are matched literally, not as LIKE wildcards."""
    members.join("under_score@example.org", name="Plain")
    members.join("underXscore@example.org", name="100% Pat")
    assert [m.email for m in admin.list_members(session, search="under_").members] == ["under_score@example.org"]
    assert [m.email for m in admin.list_members(session, search="0%").members] == ["underXscore@example.org"]
    assert [m.email for m in admin.list_members(session, search="%").members] == ["underXscore@example.org"]


def test_pages_run_newest_first_without_gaps_or_repeats(session: Session, members: Members) -> None:
    """Keyset pages of two cover every member once, newest first, and the last page has no next_after_id."""
    for n in range(5):
        members.join(f"page{n}@example.org")
    seen: list[str] = []
    after: int | None = None
    while True:
        page = admin.list_members(session, after_id=after, limit=2)
        seen += [m.email for m in page.members]
        if page.next_after_id is None:
            break
        after = page.next_after_id
    assert seen == [f"page{n}@example.org" for n in reversed(range(5))]


@pytest.mark.parametrize(("search", "limit"), [("x" * (admin.MAX_SEARCH_LENGTH + 1), 50), ("", 0), ("", 501)])
def test_bad_search_or_page_size_raises_invalid_input(session: Session, search: str, limit: int) -> None:
    """An oversized search or a page size outside 1..500 raises InvalidInput instead of running a query."""
    with pytest.raises(InvalidInput):
        admin.list_members(session, search=search, limit=limit)


def test_find_member_and_history(session: Session, members: Members, clock: FrozenClock) -> None:
    """find_member raises InvalidInput for no such id; the history lists events, deliveries, mail and the admins
    named."""
    with pytest.raises(InvalidInput):
        admin.find_member(session, 12345)
    person = create_admin(session, "helper@forum.example", "a long test password", clock=clock)
    session.flush()
    member = members.join_and_confirm("hist@example.org")
    members.announcement("Hello", {member.id: DeliveryState.SENT})
    admin.unsubscribe_on_behalf(session, member.id, person.id, clock=clock)

    history = admin.find_member_history(session, admin.find_member(session, member.id).id)

    assert [e.action for e in history.consent_events] == [
        ConsentAction.REQUESTED,
        ConsentAction.CONFIRMED,
        ConsentAction.WITHDRAWN,
    ]
    assert history.consent_events[0].wording is not None
    assert [(d.subject, d.state) for d in history.deliveries] == [("Hello", DeliveryState.SENT)]
    assert [m.kind for m in history.emails] == [MailKind.CONFIRM, MailKind.WELCOME]
    assert history.admin_emails == {person.id: "helper@forum.example"}


# --- acting on a member's behalf ------------------------------------------------------------------------


def test_unsubscribe_on_behalf_records_the_admin_and_drops_waiting_confirmations(
    session: Session, members: Members, clock: FrozenClock
) -> None:
    """An admin unsubscribe is a WITHDRAWN event by method admin naming the admin; a waiting confirm mail is dropped."""
    member = members.join("phoned@example.org")
    clock.advance(minutes=5)
    assert admin.unsubscribe_on_behalf(session, member.id, ADMIN_ID, clock=clock) == (member, True)
    assert (member.status, member.unsubscribed_at) == (MemberStatus.UNSUBSCRIBED, clock.now())
    event = session.scalars(select(ConsentEvent).where(ConsentEvent.action == ConsentAction.WITHDRAWN)).one()
    assert event.method is ConsentMethod.ADMIN
    assert event.detail == {"admin_id": ADMIN_ID, "status_before": "pending"}
    session.expire_all()
    mail = session.scalars(select(OutboxMessage).where(OutboxMessage.member_id == member.id)).one()
    assert (mail.kind, mail.state) == (MailKind.CONFIRM, OutboxState.DROPPED)

    assert admin.unsubscribe_on_behalf(session, member.id, ADMIN_ID, clock=clock)[1] is False
    assert session.scalar(select(ConsentEvent.id).where(ConsentEvent.id > event.id)) is None
    with pytest.raises(InvalidInput):
        admin.unsubscribe_on_behalf(session, 98765, ADMIN_ID, clock=clock)


def test_unsubscribe_on_behalf_keeps_mail_already_sent(session: Session, members: Members, clock: FrozenClock) -> None:
    """Only pending confirm/welcome/already-member mail is dropped: sent mail and other kinds keep their state."""
    member = members.join_and_confirm("keepmail@example.org")
    sent = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == MailKind.CONFIRM)).one()
    sent.state = OutboxState.SENT
    enqueue_mail(session, MailKind.PREFERENCES_LINK, member_id=member.id, clock=clock)
    session.flush()
    admin.unsubscribe_on_behalf(session, member.id, ADMIN_ID, clock=clock)
    session.expire_all()
    states = dict(session.execute(select(OutboxMessage.kind, OutboxMessage.state)).all())
    assert states == {
        MailKind.CONFIRM: OutboxState.SENT,
        MailKind.WELCOME: OutboxState.DROPPED,
        MailKind.PREFERENCES_LINK: OutboxState.PENDING,
    }
    assert session.scalar(select(OutboxMessage.member_id).where(OutboxMessage.kind == MailKind.PREFERENCES_LINK)) == (
        member.id
    )


def test_admin_resend_follows_the_join_rules(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """An admin resend is throttled like the form, refused with NotPending for non-pending and Suppressed for blocked
    addresses."""
    pending = members.join("waiting@example.org")
    assert admin.resend_confirmation_by_admin(session, pending.id, ADMIN_ID, policy=policy, clock=clock) is (
        ResendOutcome.THROTTLED
    )
    assert admin.next_confirmation_allowed_at(pending, policy) == clock.now() + policy.confirmation_interval
    clock.set(admin.next_confirmation_allowed_at(pending, policy))  # type: ignore[arg-type]
    assert admin.resend_confirmation_by_admin(session, pending.id, ADMIN_ID, policy=policy, clock=clock) is (
        ResendOutcome.QUEUED
    )
    assert members.mails(pending.id) == [MailKind.CONFIRM, MailKind.CONFIRM]

    confirmed = members.join_and_confirm("done@example.org")
    with pytest.raises(NotPending):
        admin.resend_confirmation_by_admin(session, confirmed.id, ADMIN_ID, policy=policy, clock=clock)
    blocked = members.join("blocked@example.org")
    consent.suppress_address(session, policy.suppression_key, blocked.email_key, "bounce", clock=clock)
    clock.advance(hours=2)
    with pytest.raises(Suppressed):
        admin.resend_confirmation_by_admin(session, blocked.id, ADMIN_ID, policy=policy, clock=clock)
    assert members.mails(blocked.id) == [MailKind.CONFIRM]


def test_erase_on_behalf_is_the_members_own_erasure(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """An admin erasure removes the member and their history and leaves the erasure hash; a second one raises
    InvalidInput."""
    member = members.join_and_confirm("erase@example.org")
    member_id = member.id
    admin.erase_on_behalf(session, member_id, ADMIN_ID, suppression_key=policy.suppression_key, clock=clock)
    session.commit()
    assert session.get(Member, member_id) is None
    assert session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member_id)).all() == []
    assert session.scalars(select(Suppression.reason)).all() == ["erased"]
    with pytest.raises(InvalidInput):
        admin.erase_on_behalf(session, member_id, ADMIN_ID, suppression_key=policy.suppression_key, clock=clock)
    assert admin.count_by_status(session)[MemberStatus.MEMBER] == 0
