"""Joining, confirming and leaving (J1, J2, J4, C1, C3) through mailer.members.membership's plain functions.

The HTTP journeys are in tests/integration (test_journey, test_repeat_joins, test_unsubscribe_links); these
call the domain directly with a session and a FrozenClock, so each rule is checked on its own."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.conftest import FORM, LINK, Members
from mailer.clock import FrozenClock
from mailer.errors import InvalidInput, NotPending, TokenExpired, TokenInvalid
from mailer.mail.tokens import Purpose, read_token
from mailer.members import consent, membership
from mailer.members.consent import Evidence
from mailer.members.membership import JoinDetails, JoinOutcome, MembershipPolicy
from mailer.models import (
    ConsentAction,
    ConsentEvent,
    ConsentMethod,
    JoinRequest,
    MailKind,
    Member,
    MemberStatus,
    OutboxMessage,
    SocialMedia,
    Suppression,
)
from mailer.settings import Settings

ONE_CLICK = Evidence(method=ConsentMethod.ONE_CLICK)


def details(email: str, *, name: str = "Pat", group_ids: list[int] | None = None) -> JoinDetails:
    return JoinDetails(email=email, name=name, social_media=SocialMedia.YES, group_ids=group_ids or [])


# --- joining --------------------------------------------------------------------------------------------


def test_join_creates_a_pending_member_with_requested_consent_and_a_confirm_mail(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """A new address becomes a pending member, with a REQUESTED event holding the wording shown and one confirm mail."""
    outcome = membership.request_join(
        session, details("New.Person@Example.org", name="  Nia  ", group_ids=[2, 1]), FORM, policy=policy, clock=clock
    )
    assert outcome is JoinOutcome.NEW
    member = members.member("new.person@example.org")
    assert (member.email, member.name, member.status) == ("New.Person@example.org", "Nia", MemberStatus.PENDING)
    assert [g.id for g in member.groups] == [1, 2]
    assert member.confirmed_at is None and member.created_at == clock.now()
    event = session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member.id)).one()
    assert (event.action, event.method, event.ip_address) == (ConsentAction.REQUESTED, ConsentMethod.FORM, "192.0.2.10")
    assert event.wording is not None and event.occurred_at == clock.now()
    detail = event.detail
    assert detail is not None and len(detail["groups"]) == 2
    assert policy.forum_name in detail["wording_as_shown"] and "{forum_name}" not in detail["wording_as_shown"]
    assert members.mails(member.id) == [MailKind.CONFIRM]
    assert member.last_confirmation_sent_at == clock.now()


@pytest.mark.parametrize(
    ("email", "name", "group_ids", "field"),
    [
        ("not-an-address", "Pat", [], "email"),
        ("pat@example.org", "Pat\r\nBcc: x@example.org", [], "name"),
        ("pat@example.org", "P" * 101, [], "name"),
        ("pat@example.org", "Pat", [999], "groups"),
    ],
)
def test_bad_join_input_raises_invalid_input_and_stores_nothing(
    session: Session,
    members: Members,
    policy: MembershipPolicy,
    clock: FrozenClock,
    email: str,
    name: str,
    group_ids: list[int],
    field: str,
) -> None:
    """A bad address, name or group raises InvalidInput naming the field, from both entry points, and adds no row."""
    with pytest.raises(InvalidInput) as raised:
        membership.request_join(
            session, details(email, name=name, group_ids=group_ids), FORM, policy=policy, clock=clock
        )
    assert raised.value.field == field
    with pytest.raises(InvalidInput):
        membership.queue_join(session, details(email, name=name, group_ids=group_ids), FORM, clock=clock)
    session.flush()
    assert (members.count(Member), members.count(JoinRequest), members.count(OutboxMessage)) == (0, 0, 0)


def test_joining_twice_within_the_interval_sends_one_mail_then_resends_after_it(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """However often the form is posted, a pending address gets at most one confirm mail per interval (J1)."""
    member = members.join("twice@example.org", name="First")
    again = membership.request_join(
        session, details("twice@example.org", name="Other"), FORM, policy=policy, clock=clock
    )
    assert again is JoinOutcome.THROTTLED
    clock.advance(seconds=policy.confirmation_interval.total_seconds() + 1)
    later = membership.request_join(
        session, details("TWICE@example.org", name="Other"), FORM, policy=policy, clock=clock
    )
    assert later is JoinOutcome.CONFIRMATION_RESENT
    assert members.mails(member.id) == [MailKind.CONFIRM, MailKind.CONFIRM]
    assert member.name == "First", "someone else typing a pending address must not change its details (issue 15)"
    assert members.count(Member) == 1


def test_joining_as_a_member_sends_the_already_member_note(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """A confirmed member who joins again gets an 'already a member' mail, and stays a member with the same links."""
    member = members.join_and_confirm("member@example.org")
    version = member.token_version
    clock.advance(hours=2)
    outcome = membership.request_join(session, details("member@example.org"), FORM, policy=policy, clock=clock)
    assert outcome is JoinOutcome.ALREADY_MEMBER
    assert members.mails(member.id)[-1] is MailKind.ALREADY_MEMBER
    assert (member.status, member.token_version) == (MemberStatus.MEMBER, version)


def test_suppressed_address_is_refused_without_a_trace(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """An address suppressed after bounces is answered SUPPRESSED: no member, no consent event, no mail (C3)."""
    consent.suppress_address(session, policy.suppression_key, "bounced@example.org", "bounce", clock=clock)
    outcome = membership.request_join(session, details("Bounced@Example.org"), FORM, policy=policy, clock=clock)
    assert outcome is JoinOutcome.SUPPRESSED
    session.flush()
    assert (members.count(Member), members.count(ConsentEvent), members.count(OutboxMessage)) == (0, 0, 0)


# --- the queued join (the web request stores, the worker carries out) -----------------------------------


def test_queue_join_stores_only_the_request(session: Session, members: Members, clock: FrozenClock) -> None:
    """queue_join keeps the checked post with its evidence (control characters stripped) and touches no member or
    mail."""
    evidence = Evidence(method=ConsentMethod.FORM, ip_address="2001:db8::1", user_agent="Agent\x00\x07/2")
    request = membership.queue_join(session, details(" Queued@Example.org ", group_ids=[3]), evidence, clock=clock)
    assert (request.email, request.group_ids, request.created_at) == ("Queued@example.org", [3], clock.now())
    assert (request.ip_address, request.user_agent) == ("2001:db8::1", "Agent/2")
    assert (members.count(JoinRequest), members.count(Member), members.count(OutboxMessage)) == (1, 0, 0)


def test_processing_join_requests_joins_as_of_the_post_and_deletes_them(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """process_join_requests runs each post in order, as of the time it was posted, then deletes it."""
    clock.advance(days=40)  # away from FrozenClock's default moment, so "as of the post" is really checked
    posted_at = clock.now()
    membership.queue_join(session, details("one@example.org", group_ids=[1]), FORM, clock=clock)
    clock.advance(minutes=1)
    membership.queue_join(session, details("one@example.org"), FORM, clock=clock)
    membership.queue_join(session, details("two@example.org"), FORM, clock=clock)
    clock.advance(minutes=30)  # the worker gets to it later

    outcomes = membership.process_join_requests(session, policy=policy)

    assert outcomes == [JoinOutcome.NEW, JoinOutcome.THROTTLED, JoinOutcome.NEW]
    assert members.count(JoinRequest) == 0
    one = members.member("one@example.org")
    assert one.created_at == posted_at and [g.id for g in one.groups] == [1]
    assert members.events(one.id) == [(ConsentAction.REQUESTED, ConsentMethod.FORM)]
    requested = session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == one.id)).one()
    assert (requested.occurred_at, requested.ip_address) == (posted_at, "192.0.2.10")
    assert members.mails() == [MailKind.CONFIRM, MailKind.CONFIRM]


def test_processing_forgets_a_request_whose_group_was_retired(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """A queued post naming a group deleted since is dropped with no outcome, and the rest still run."""
    from mailer.models import Group

    membership.queue_join(session, details("gone@example.org", group_ids=[3]), FORM, clock=clock)
    membership.queue_join(session, details("fine@example.org"), FORM, clock=clock)
    session.delete(session.get(Group, 3))
    session.flush()
    assert membership.process_join_requests(session, policy=policy) == [JoinOutcome.NEW]
    assert members.count(JoinRequest) == 0
    assert [m.email for m in session.scalars(select(Member))] == ["fine@example.org"]


def test_processing_respects_the_limit(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """Only `limit` requests are carried out per call; the rest wait for the next tick, oldest first."""
    for n in range(3):
        membership.queue_join(session, details(f"p{n}@example.org"), FORM, clock=clock)
    assert len(membership.process_join_requests(session, policy=policy, limit=2)) == 2
    assert [r.email for r in session.scalars(select(JoinRequest))] == ["p2@example.org"]


# --- confirming -----------------------------------------------------------------------------------------


def test_confirm_makes_a_member_records_consent_and_queues_the_welcome(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """Confirming turns pending into member at the clock's time, with a CONFIRMED event and one welcome mail (J2)."""
    member = members.join("confirm@example.org")
    clock.advance(minutes=5)
    confirmed, newly = membership.confirm_membership(
        session, member.link_key, member.token_version, LINK, policy=policy, clock=clock
    )
    assert newly and confirmed is member
    assert (member.status, member.confirmed_at) == (MemberStatus.MEMBER, clock.now())
    assert members.events(member.id) == [
        (ConsentAction.REQUESTED, ConsentMethod.FORM),
        (ConsentAction.CONFIRMED, ConsentMethod.EMAIL_LINK),
    ]
    assert members.mails(member.id) == [MailKind.CONFIRM, MailKind.WELCOME]


def test_confirming_twice_changes_nothing_the_second_time(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """A second confirm (a mail scanner re-posting) returns newly=False: no second event, no second welcome."""
    member = members.join_and_confirm("double@example.org")
    confirmed_at = member.confirmed_at
    clock.advance(minutes=1)
    again, newly = membership.confirm_membership(
        session, member.link_key, member.token_version, LINK, policy=policy, clock=clock
    )
    assert (again, newly) == (member, False)
    assert member.confirmed_at == confirmed_at
    assert [a for a, _ in members.events(member.id)].count(ConsentAction.CONFIRMED) == 1
    assert members.mails(member.id).count(MailKind.WELCOME) == 1


def test_confirm_link_works_until_the_max_age_and_then_raises_token_expired(
    session: Session, members: Members, policy: MembershipPolicy, settings: Settings, clock: FrozenClock
) -> None:
    """A confirm link read with the configured max age works just inside it; just after, TokenExpired names the
    member."""
    member = members.join("aging@example.org")
    token = members.token(Purpose.CONFIRM, member)
    max_age = int(settings.confirm_max_age.total_seconds())

    clock.advance(seconds=max_age - 1)
    assert read_token(settings.secret_key, Purpose.CONFIRM, token, clock=clock, max_age_seconds=max_age) == (
        member.link_key,
        member.token_version,
    )
    clock.advance(seconds=2)
    with pytest.raises(TokenExpired) as expired:
        read_token(settings.secret_key, Purpose.CONFIRM, token, clock=clock, max_age_seconds=max_age)
    assert expired.value.link_key == member.link_key
    assert member.status is MemberStatus.PENDING


def test_an_expired_link_can_ask_for_a_fresh_one_that_confirms(
    session: Session, members: Members, policy: MembershipPolicy, settings: Settings, clock: FrozenClock
) -> None:
    """resend_confirmation queues a new confirm mail for an expired link (once per interval), and the new link
    confirms."""
    member = members.join("expired@example.org")
    clock.advance(days=settings.confirm_max_age_days, seconds=1)
    assert membership.resend_confirmation(session, member.link_key, member.token_version, policy=policy, clock=clock)
    assert not membership.resend_confirmation(
        session, member.link_key, member.token_version, policy=policy, clock=clock
    )
    assert members.mails(member.id) == [MailKind.CONFIRM, MailKind.CONFIRM]
    fresh = members.token(Purpose.CONFIRM, member)
    max_age = int(settings.confirm_max_age.total_seconds())
    link_key, version = read_token(settings.secret_key, Purpose.CONFIRM, fresh, clock=clock, max_age_seconds=max_age)
    _, newly = membership.confirm_membership(session, link_key, version, LINK, policy=policy, clock=clock)
    assert newly and member.status is MemberStatus.MEMBER


def test_confirm_with_a_wrong_key_or_version_raises_token_invalid(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """An unknown link key or a revoked version raises TokenInvalid and confirms nobody."""
    member = members.join("revoked@example.org")
    with pytest.raises(TokenInvalid):
        membership.confirm_membership(session, "A" * 22, member.token_version, LINK, policy=policy, clock=clock)
    with pytest.raises(TokenInvalid):
        membership.confirm_membership(
            session, member.link_key, member.token_version + 1, LINK, policy=policy, clock=clock
        )
    assert member.status is MemberStatus.PENDING


def test_confirm_after_the_address_was_suppressed_raises_token_invalid(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """A pending member whose address bounced meanwhile cannot confirm: TokenInvalid, and no welcome mail."""
    member = members.join("bouncy@example.org")
    consent.suppress_address(session, policy.suppression_key, member.email_key, "complaint", clock=clock)
    with pytest.raises(TokenInvalid):
        membership.confirm_membership(session, member.link_key, member.token_version, LINK, policy=policy, clock=clock)
    assert member.status is MemberStatus.PENDING and MailKind.WELCOME not in members.mails(member.id)


# --- leaving and coming back ----------------------------------------------------------------------------


def test_unsubscribe_records_withdrawn_once(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """withdraw_consent unsubscribes at once with a WITHDRAWN event; repeating it changes nothing (J4, C2)."""
    member = members.join_and_confirm("leaver@example.org")
    clock.advance(days=3)
    left_at = clock.now()
    assert membership.withdraw_consent(session, member.link_key, ONE_CLICK, clock=clock) == (member, True)
    clock.advance(minutes=1)
    assert membership.withdraw_consent(session, member.link_key, ONE_CLICK, clock=clock) == (member, False)
    assert (member.status, member.unsubscribed_at) == (MemberStatus.UNSUBSCRIBED, left_at)
    assert members.events(member.id)[-1] == (ConsentAction.WITHDRAWN, ConsentMethod.ONE_CLICK)
    assert [a for a, _ in members.events(member.id)].count(ConsentAction.WITHDRAWN) == 1


def test_confirm_link_sent_before_leaving_raises_not_pending(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """A pending member who unsubscribes cannot be put back by their old confirm link: NotPending (J2)."""
    member = members.join("changed-mind@example.org")
    membership.withdraw_consent(session, member.link_key, LINK, clock=clock)
    with pytest.raises(NotPending):
        membership.confirm_membership(session, member.link_key, member.token_version, LINK, policy=policy, clock=clock)
    with pytest.raises(NotPending):
        membership.resend_confirmation(session, member.link_key, member.token_version, policy=policy, clock=clock)
    assert member.status is MemberStatus.UNSUBSCRIBED


def test_rejoining_after_unsubscribing_revokes_old_links_and_needs_a_new_confirm(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """Joining again after leaving bumps the token version, so only the new link confirms; old unsubscribe links still
    work."""
    member = members.join_and_confirm("back@example.org", name="Before")
    old_version = member.token_version
    membership.withdraw_consent(session, member.link_key, LINK, clock=clock)
    clock.advance(days=30)

    outcome = membership.request_join(
        session, details("back@example.org", name="After"), FORM, policy=policy, clock=clock
    )

    assert outcome is JoinOutcome.CONFIRMATION_RESENT
    assert (member.status, member.name, member.token_version) == (MemberStatus.UNSUBSCRIBED, "After", old_version + 1)
    with pytest.raises(TokenInvalid):
        membership.find_member_for_link(session, member.link_key, old_version)
    _, newly = membership.confirm_membership(
        session, member.link_key, member.token_version, LINK, policy=policy, clock=clock
    )
    assert newly and (member.status, member.unsubscribed_at) == (MemberStatus.MEMBER, None)
    assert [a for a, _ in members.events(member.id)] == [
        ConsentAction.REQUESTED,
        ConsentAction.CONFIRMED,
        ConsentAction.WITHDRAWN,
        ConsentAction.REQUESTED,
        ConsentAction.CONFIRMED,
    ]
    assert membership.find_member_to_unsubscribe(session, member.link_key) is member


def test_preferences_link_request_goes_to_members_only(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """request_preferences_link mails members (once per interval) and nobody else, whatever is typed."""
    member = members.join_and_confirm("prefs@example.org")
    members.join("pending@example.org")
    clock.advance(hours=2)
    assert membership.request_preferences_link(session, "PREFS@example.org", policy=policy, clock=clock)
    assert not membership.request_preferences_link(session, "prefs@example.org", policy=policy, clock=clock)
    assert not membership.request_preferences_link(session, "pending@example.org", policy=policy, clock=clock)
    assert not membership.request_preferences_link(session, "nobody@example.org", policy=policy, clock=clock)
    assert not membership.request_preferences_link(session, "not an address", policy=policy, clock=clock)
    assert members.mails().count(MailKind.PREFERENCES_LINK) == 1
    assert members.mails(member.id)[-1] is MailKind.PREFERENCES_LINK


def test_no_suppression_row_for_ordinary_leavers(session: Session, members: Members, clock: FrozenClock) -> None:
    """Unsubscribing is not suppression: the address may join again without being blocked (only erasure hashes it)."""
    member = members.join_and_confirm("ordinary@example.org")
    membership.withdraw_consent(session, member.link_key, LINK, clock=clock)
    session.flush()
    assert members.count(Suppression) == 0
    assert not consent.is_suppressed(session, members.policy.suppression_key, member.email_key)
