"""Members' rights (J5, C1-C3) through mailer.members.rights: preferences, the data download, erasure.

The HTTP side (the preferences page, data.json, the erase button) is in tests/integration/test_rights.py."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.conftest import LINK, Members
from mailer.clock import FrozenClock
from mailer.errors import InvalidInput, TokenInvalid
from mailer.members import consent, membership, rights
from mailer.members.addresses import address_hash
from mailer.members.membership import JoinDetails, JoinOutcome, MembershipPolicy
from mailer.members.rights import Preferences
from mailer.models import (
    BounceEvent,
    BounceKind,
    BounceMessage,
    ConsentAction,
    ConsentEvent,
    Delivery,
    DeliveryState,
    MailKind,
    Member,
    MemberStatus,
    OutboxMessage,
    SocialMedia,
    Suppression,
    member_group,
)


def erase(session: Session, member: Member, policy: MembershipPolicy, clock: FrozenClock) -> None:
    rights.erase_member(session, member, suppression_key=policy.suppression_key, clock=clock)
    session.commit()


# --- preferences ----------------------------------------------------------------------------------------


def test_update_preferences_records_only_what_changed(session: Session, members: Members, clock: FrozenClock) -> None:
    """A change is saved with a PREFERENCES event holding from/to per changed field; the same answers change nothing."""
    member = members.join_and_confirm("prefs@example.org", name="Pat", group_ids=[1])
    clock.advance(days=1)
    changed = rights.update_preferences(
        session, member, Preferences("Patricia", SocialMedia.NO, [1, 3]), LINK, clock=clock
    )
    assert changed and member.updated_at == clock.now()
    event = session.scalars(select(ConsentEvent).where(ConsentEvent.action == ConsentAction.PREFERENCES)).one()
    detail = event.detail
    assert detail is not None and detail["name"] == {"from": "Pat", "to": "Patricia"}
    assert set(detail) == {"name", "groups"}, "social media was already 'no'"
    assert len(detail["groups"]["to"]) == 2

    clock.advance(minutes=1)
    assert not rights.update_preferences(
        session, member, Preferences("Patricia", SocialMedia.NO, [3, 1]), LINK, clock=clock
    )
    assert [a for a, _ in members.events(member.id)].count(ConsentAction.PREFERENCES) == 1


@pytest.mark.parametrize(("name", "group_ids"), [("Pat\nBcc: x", [1]), ("Pat", [1, 999])])
def test_update_preferences_refuses_bad_input_and_keeps_the_old_answers(
    session: Session, members: Members, clock: FrozenClock, name: str, group_ids: list[int]
) -> None:
    """A bad name or an unknown group raises InvalidInput before anything on the member changes."""
    member = members.join_and_confirm("keep@example.org", name="Pat", group_ids=[2])
    with pytest.raises(InvalidInput):
        rights.update_preferences(session, member, Preferences(name, SocialMedia.YES, group_ids), LINK, clock=clock)
    assert (member.name, member.social_media, [g.id for g in member.groups]) == ("Pat", SocialMedia.NO, [2])


# --- the data download ----------------------------------------------------------------------------------


def test_export_holds_profile_consent_history_and_emails_of_this_member_only(
    session: Session, members: Members, clock: FrozenClock
) -> None:
    """The export is JSON-ready and holds the profile, every consent event with the wording shown, and each email's
    outcome."""
    member = members.join_and_confirm("data@example.org", name="Dana", group_ids=[2])
    other = members.join_and_confirm("other@example.org", name="Olly")
    members.announcement("Council letter", {member.id: DeliveryState.SENT, other.id: DeliveryState.SENT})
    members.announcement("Summer news", {member.id: DeliveryState.FAILED}, error="550 mailbox full")

    data = json.loads(json.dumps(rights.export_member_data(session, member)))

    profile = data["profile"]
    assert (profile["email"], profile["name"], profile["status"], profile["social_media"]) == (
        "data@example.org",
        "Dana",
        "member",
        "no",
    )
    assert profile["groups"] == [member.groups[0].name]
    assert profile["confirmed_at"] == clock.now().isoformat() and profile["unsubscribed_at"] is None
    history = data["consent_history"]
    assert [e["action"] for e in history] == ["requested", "confirmed"]
    assert [e["method"] for e in history] == ["form", "email_link"]
    assert history[0]["ip_address"] == "192.0.2.10" and history[0]["wording"] and history[0]["wording_version"] == 1
    assert history[0]["privacy_notice_version"] == consent.current_wording(session).privacy_notice_version
    assert [(e["announcement"], e["outcome"], e["error"]) for e in data["emails_sent"]] == [
        ("Council letter", "sent", None),
        ("Summer news", "failed", "550 mailbox full"),
    ]
    assert "other@example.org" not in json.dumps(data) and "Olly" not in json.dumps(data)


# --- erasure --------------------------------------------------------------------------------------------


def test_erasure_removes_the_person_and_keeps_only_what_must_stay(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """Erasure deletes profile, groups, consent history and bounce records; keeps delivery outcomes and a keyed hash
    (C3)."""
    member = members.join_and_confirm("erase.me@example.org", name="Erin", group_ids=[1, 2])
    keep = members.join_and_confirm("stay@example.org")
    item = members.announcement("News", {member.id: DeliveryState.FAILED, keep.id: DeliveryState.SENT}, error="550 x")
    delivery = session.scalars(select(Delivery).where(Delivery.member_id == member.id)).one()
    report = BounceMessage(
        received_at=clock.now(), source="smtp", raw=b"bounce about erase.me", size=21, delivery_id=delivery.id
    )
    session.add(report)
    session.flush()
    session.add(
        BounceEvent(
            source_key="k1",
            member_id=member.id,
            delivery_id=delivery.id,
            bounce_message_id=report.id,
            kind=BounceKind.PERMANENT,
            occurred_at=clock.now(),
        )
    )
    session.commit()
    member_id, email_key = member.id, member.email_key

    erase(session, member, policy, clock)

    assert session.get(Member, member_id) is None
    assert session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member_id)).all() == []
    assert session.execute(select(member_group).where(member_group.c.member_id == member_id)).all() == []
    assert (members.count(BounceMessage), members.count(BounceEvent)) == (0, 0)
    outcomes = session.execute(
        select(Delivery.member_id, Delivery.state, Delivery.last_error)
        .where(Delivery.announcement_id == item.id)
        .order_by(Delivery.id)
    ).all()
    assert [tuple(row) for row in outcomes] == [(None, DeliveryState.FAILED, None), (keep.id, DeliveryState.SENT, None)]
    mails = session.execute(select(OutboxMessage.member_id, OutboxMessage.to_address, OutboxMessage.kind)).all()
    assert (None, None, MailKind.WELCOME) in [tuple(row) for row in mails]
    suppression = session.scalars(select(Suppression)).one()
    assert (suppression.reason, suppression.address_hash) == (
        rights.ERASED,
        address_hash(policy.suppression_key, email_key),
    )
    assert "erase.me" not in suppression.address_hash
    assert members.events(keep.id) and session.get(Member, keep.id) is not None


def test_links_of_an_erased_member_fail(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """After erasure their confirm and preferences links raise TokenInvalid, and unsubscribe says they are not on the
    list."""
    member = members.join("gone@example.org")
    link_key, version = member.link_key, member.token_version
    erase(session, member, policy, clock)
    with pytest.raises(TokenInvalid):
        membership.find_member_for_link(session, link_key, version)
    with pytest.raises(TokenInvalid):
        membership.confirm_membership(session, link_key, version, LINK, policy=policy, clock=clock)
    with pytest.raises(TokenInvalid):
        membership.resend_confirmation(session, link_key, version, policy=policy, clock=clock)
    assert membership.withdraw_consent(session, link_key, LINK, clock=clock) == (None, False)
    assert membership.find_member_to_unsubscribe(session, link_key) is None


def test_an_erased_person_can_join_again_and_confirming_lifts_the_erasure(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """Erasure only blocks mail until the person joins and confirms again; the new row has a new link key."""
    old = members.join_and_confirm("again@example.org")
    old_key = old.link_key
    erase(session, old, policy, clock)
    clock.advance(days=10)
    outcome = membership.request_join(
        session, JoinDetails("again@example.org", "Pat", SocialMedia.YES, []), LINK, policy=policy, clock=clock
    )
    assert outcome is JoinOutcome.NEW
    new = members.member("again@example.org")
    assert new.link_key != old_key
    assert consent.is_suppressed(session, policy.suppression_key, new.email_key), "still suppressed until confirmed"
    members.confirm(new)
    session.flush()
    assert not consent.is_suppressed(session, policy.suppression_key, new.email_key)
    assert new.status is MemberStatus.MEMBER


def test_erasing_a_bounced_address_keeps_it_blocked(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
) -> None:
    """An address already suppressed for bounces keeps that reason after erasure, so joining again is refused."""
    member = members.join_and_confirm("hardbounce@example.org")
    consent.suppress_address(session, policy.suppression_key, member.email_key, "bounce", clock=clock)
    erase(session, member, policy, clock)
    assert session.scalars(select(Suppression.reason)).all() == ["bounce"]
    outcome = membership.request_join(
        session, JoinDetails("hardbounce@example.org", "Pat", SocialMedia.YES, []), LINK, policy=policy, clock=clock
    )
    assert outcome is JoinOutcome.SUPPRESSED and members.count(Member) == 0
