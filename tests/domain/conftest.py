"""Fixtures for domain tests: the plain functions in mailer.members, called with a session, a FrozenClock
and the settings they take, as Mailman's app/tests call add_member and friends. No test client, no HTTP.

The app is built only to migrate-and-wire the database engine (SQLite pragmas included); the tests' session
is a plain SQLAlchemy Session on that engine with NO app context pushed, so a domain function that reaches
for Flask (current_app, request, db.session) fails here instead of passing quietly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import base_config
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer import create_app
from mailer.clock import FrozenClock
from mailer.extensions import db
from mailer.mail.tokens import Purpose, make_token
from mailer.members import membership
from mailer.members.consent import Evidence
from mailer.members.membership import JoinDetails, JoinOutcome, MembershipPolicy
from mailer.models import (
    Announcement,
    AnnouncementState,
    ConsentAction,
    ConsentEvent,
    ConsentMethod,
    Delivery,
    DeliveryState,
    MailKind,
    Member,
    OutboxMessage,
    SocialMedia,
)
from mailer.settings import Settings, settings_of

FORM = Evidence(method=ConsentMethod.FORM, ip_address="192.0.2.10", user_agent="Test browser/1.0")
LINK = Evidence(method=ConsentMethod.EMAIL_LINK, ip_address="192.0.2.11", user_agent="Test browser/1.0")


@pytest.fixture
def domain_app(database_uri: str) -> Iterator[Flask]:
    """An app on this test's own migrated database, used for its engine and settings only."""
    app = create_app(base_config(database_uri))
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def session(domain_app: Flask) -> Iterator[Session]:
    """A plain Session on the test's database, outside any Flask app or request context."""
    with domain_app.app_context():
        engine = db.engine
    with Session(bind=engine) as plain:
        yield plain


@pytest.fixture
def settings(domain_app: Flask) -> Settings:
    return settings_of(domain_app)


@pytest.fixture
def policy(settings: Settings) -> MembershipPolicy:
    return settings.membership_policy


@dataclass
class Members:
    """Set-up steps through the same domain functions (the ones under test are called in the tests)."""

    session: Session
    clock: FrozenClock
    policy: MembershipPolicy
    settings: Settings

    def join(self, email: str, *, name: str = "Pat", group_ids: list[int] | None = None) -> Member:
        outcome = membership.request_join(
            self.session,
            JoinDetails(email=email, name=name, social_media=SocialMedia.NO, group_ids=group_ids or []),
            FORM,
            policy=self.policy,
            clock=self.clock,
        )
        assert outcome in (JoinOutcome.NEW, JoinOutcome.CONFIRMATION_RESENT), outcome
        return self.member(email)

    def confirm(self, member: Member) -> Member:
        confirmed, newly = membership.confirm_membership(
            self.session, member.link_key, member.token_version, LINK, policy=self.policy, clock=self.clock
        )
        assert newly
        return confirmed

    def join_and_confirm(self, email: str, *, name: str = "Pat", group_ids: list[int] | None = None) -> Member:
        return self.confirm(self.join(email, name=name, group_ids=group_ids))

    def member(self, email: str) -> Member:
        return self.session.scalars(select(Member).where(Member.email_key == email.lower())).one()

    def token(self, purpose: Purpose, member: Member) -> str:
        """The link a mail would carry, signed at the clock's current time."""
        return make_token(self.settings.secret_key, purpose, member.link_key, member.token_version, clock=self.clock)

    def events(self, member_id: int) -> list[tuple[ConsentAction, ConsentMethod]]:
        rows = self.session.execute(
            select(ConsentEvent.action, ConsentEvent.method)
            .where(ConsentEvent.member_id == member_id)
            .order_by(ConsentEvent.id)
        ).all()
        return [(action, method) for action, method in rows]

    def mails(self, member_id: int | None = None) -> list[MailKind]:
        query = select(OutboxMessage.kind).order_by(OutboxMessage.id)
        if member_id is not None:
            query = query.where(OutboxMessage.member_id == member_id)
        return list(self.session.scalars(query))

    def announcement(
        self,
        subject: str,
        outcomes: dict[int, DeliveryState],
        *,
        state: AnnouncementState = AnnouncementState.SENT,
        error: str | None = None,
    ) -> Announcement:
        """An announcement already started, with one delivery per member in the given state (rows, not a send)."""
        now = self.clock.now()
        item = Announcement(
            subject=subject,
            body_markdown=f"# {subject}",
            state=state,
            created_at=now,
            updated_at=now,
            started_at=now,
            finished_at=now if state is AnnouncementState.SENT else None,
        )
        self.session.add(item)
        self.session.flush()
        for member_id, outcome in outcomes.items():
            self.session.add(
                Delivery(
                    announcement_id=item.id,
                    member_id=member_id,
                    state=outcome,
                    attempts=1,
                    next_attempt_at=now,
                    sent_at=now if outcome is DeliveryState.SENT else None,
                    last_error=error if outcome is DeliveryState.FAILED else None,
                )
            )
        self.session.flush()
        return item

    def count(self, model: type[object]) -> int:
        return int(self.session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def members(session: Session, clock: FrozenClock, policy: MembershipPolicy, settings: Settings) -> Members:
    return Members(session=session, clock=clock, policy=policy, settings=settings)
