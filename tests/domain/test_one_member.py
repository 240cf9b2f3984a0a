"""V7 through mailer.members.one_member: the rules of adding one member and of changing an address, as plain
functions on a session and a FrozenClock. The pages and real email are in tests/integration/test_one_member.py."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.conftest import LINK, Members
from mailer.admins.accounts import create_admin
from mailer.clock import FrozenClock
from mailer.errors import InvalidInput, NotPending, Suppressed, TokenInvalid
from mailer.members import consent, membership, one_member, rights
from mailer.members.membership import JoinDetails, MembershipPolicy
from mailer.models import AddressChange, ConsentMethod, MailKind, Member, MemberStatus, SocialMedia
from mailer.worker.housekeeping import Retention, purge

MAX_AGE = timedelta(days=7)


@pytest.fixture
def admin_id(session: Session, clock: FrozenClock) -> int:
    return create_admin(session, "office@forum.example", "a long test password", clock=clock).id


def details(email: str, name: str = "Pat") -> JoinDetails:
    return JoinDetails(email=email, name=name, social_media=SocialMedia.NO, group_ids=[1])


def by_phone(on: date) -> one_member.Agreement:
    return one_member.Agreement(ConsentMethod.PHONE, on, wording_id=1, note="Rang the office.")


def test_someone_who_left_and_phones_to_rejoin_gets_fresh_links(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock, admin_id: int
):
    """V7: re-adding an unsubscribed member with evidence makes them a member and revokes links sent before they
    left (their token version moves on); an agreement dated tomorrow is refused."""
    member = members.join_and_confirm("back@example.org")
    membership.withdraw_consent(session, member.link_key, LINK, clock=clock)
    version = member.token_version
    today = clock.now().date()
    with pytest.raises(InvalidInput, match="today or in the past"):
        one_member.add_member(session, details("back@example.org"), admin_id, agreement=by_phone(today + timedelta(1)),
                              policy=policy, clock=clock, today=today)
    again, outcome = one_member.add_member(session, details("back@example.org", "Pat Again"), admin_id,
                                           agreement=by_phone(today), policy=policy, clock=clock, today=today)
    assert (again.id, outcome, again.status) == (member.id, one_member.AddOutcome.ADDED, MemberStatus.MEMBER)
    assert again.token_version == version + 1 and again.name == "Pat Again"
    assert members.mails(member.id)[-1] is MailKind.WELCOME_ADDED


def test_an_erased_address_may_be_sent_a_confirmation_but_not_added_on_evidence(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock, admin_id: int
):
    """V7/C3: after an erasure only the person themselves can lift it, by confirming an email."""
    member = members.join_and_confirm("erased@example.org")
    rights.erase_member(session, member, suppression_key=policy.suppression_key, clock=clock)
    today = clock.now().date()
    with pytest.raises(Suppressed):
        one_member.add_member(session, details("erased@example.org"), admin_id, agreement=by_phone(today),
                              policy=policy, clock=clock, today=today)
    added, outcome = one_member.add_member(session, details("erased@example.org"), admin_id, agreement=None,
                                           policy=policy, clock=clock, today=today)
    assert outcome is one_member.AddOutcome.CONFIRMATION_SENT and added.status is MemberStatus.PENDING


def test_address_change_rules(session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock):
    """V7: only a member's address changes; not to their own; one link an hour; a link goes stale after the
    confirmation period; if the new address joins meanwhile, confirming is refused and nothing changes."""
    pending = members.join("waiting@example.org")
    with pytest.raises(NotPending):
        one_member.request_address_change(session, pending, "new@example.org", admin_id=None, policy=policy,
                                          clock=clock)
    member = members.join_and_confirm("mover@example.org")
    with pytest.raises(InvalidInput, match="already in use for this membership"):
        one_member.request_address_change(session, member, "MOVER@example.org", admin_id=None, policy=policy,
                                          clock=clock)
    ask = one_member.request_address_change
    assert ask(session, member, "first@example.org", admin_id=None, policy=policy, clock=clock).value == "sent"
    assert ask(session, member, "second@example.org", admin_id=None, policy=policy, clock=clock).value == "throttled"
    first = session.scalars(select(AddressChange)).one()
    clock.advance(days=8)
    with pytest.raises(TokenInvalid):
        one_member.confirm_address_change(session, first.key, LINK, policy=policy, max_age=MAX_AGE, clock=clock)
    assert ask(session, member, "second@example.org", admin_id=None, policy=policy, clock=clock).value == "sent"
    second = session.scalars(select(AddressChange).order_by(AddressChange.id.desc())).first()
    members.join("second@example.org")  # someone joins with it before the link is pressed
    with pytest.raises(InvalidInput, match="already on our list"):
        one_member.confirm_address_change(session, second.key, LINK, policy=policy, max_age=MAX_AGE, clock=clock)
    assert session.get(Member, member.id).email == "mover@example.org"


def test_confirming_cancels_other_changes_and_erasure_and_purge_forget_them(
    session: Session, members: Members, policy: MembershipPolicy, clock: FrozenClock
):
    """V7/C3: a confirmed change cancels the member's other waiting ones; erasing the member deletes their
    changes (new addresses are theirs too); housekeeping forgets changes older than the retention period."""
    member = members.join_and_confirm("one@example.org")
    ask = one_member.request_address_change
    ask(session, member, "two@example.org", admin_id=None, policy=policy, clock=clock)
    clock.advance(hours=2)
    ask(session, member, "three@example.org", admin_id=None, policy=policy, clock=clock)
    changes = session.scalars(select(AddressChange).order_by(AddressChange.id)).all()
    changed, newly = one_member.confirm_address_change(session, changes[1].key, LINK, policy=policy,
                                                       max_age=MAX_AGE, clock=clock)
    assert newly and changed.email == "three@example.org"
    assert [c.new_email for c in session.scalars(select(AddressChange))] == ["three@example.org"]
    assert one_member.confirm_address_change(session, changes[1].key, LINK, policy=policy, max_age=MAX_AGE,
                                             clock=clock) == (changed, False)
    assert members.mails(member.id)[-1] is MailKind.ADDRESS_CHANGED

    other = members.join_and_confirm("other@example.org")
    ask(session, other, "elsewhere@example.org", admin_id=None, policy=policy, clock=clock)
    rights.erase_member(session, other, suppression_key=policy.suppression_key, clock=clock)
    assert session.scalar(select(AddressChange).where(AddressChange.new_email == "elsewhere@example.org")) is None

    clock.advance(days=31)
    purge(session, clock=clock, retention=Retention())
    assert session.scalars(select(AddressChange)).all() == []
    assert consent.is_suppressed(session, policy.suppression_key, "other@example.org")
