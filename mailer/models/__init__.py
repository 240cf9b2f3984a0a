"""Typed tables and their states, one module per feature. Behaviour lives in the domain packages, not here.

Every table is imported here, so `from mailer.models import Member` works and SQLAlchemy sees them all."""

from mailer.models.admins import (
    Admin,
    AdminInvitation,
    AdminLink,
    AdminLinkPurpose,
    AdminRole,
    AdminSession,
    RecoveryCode,
    SecurityPolicy,
)
from mailer.models.announcements import (
    Announcement,
    AnnouncementState,
    AnnouncementTemplate,
    Delivery,
    DeliveryState,
    Document,
    announcement_group,
)
from mailer.models.audit import AuditEvent
from mailer.models.bounces import (
    BounceEvent,
    BounceKind,
    BounceMessage,
    BounceOutcome,
)
from mailer.models.forum import (
    FORUM_DETAILS_ROW_ID,
    ForumDetailsRow,
)
from mailer.models.members import (
    CURRENT_SOCIAL_MEDIA_QUESTION,
    SOCIAL_MEDIA_QUESTIONS,
    AddressChange,
    ConsentAction,
    ConsentEvent,
    ConsentMethod,
    ConsentWording,
    Group,
    JoinRequest,
    Member,
    MemberDeparture,
    MemberStatus,
    SocialMedia,
    SocialMediaQuestion,
    Suppression,
    member_group,
    new_link_key,
)
from mailer.models.outbox import (
    OTHER_ADDRESS_KINDS,
    MailKind,
    OutboxMessage,
    OutboxState,
)
from mailer.models.service import (
    RateLimitCounter,
    WorkerHeartbeat,
)
from mailer.models.types import (
    UTCDateTime,
    enum_column,
    table_of,
)

__all__ = [
    "CURRENT_SOCIAL_MEDIA_QUESTION",
    "FORUM_DETAILS_ROW_ID",
    "OTHER_ADDRESS_KINDS",
    "SOCIAL_MEDIA_QUESTIONS",
    "AddressChange",
    "Admin",
    "AdminInvitation",
    "AdminLink",
    "AdminLinkPurpose",
    "AdminRole",
    "AdminSession",
    "Announcement",
    "AnnouncementState",
    "AnnouncementTemplate",
    "AuditEvent",
    "BounceEvent",
    "BounceKind",
    "BounceMessage",
    "BounceOutcome",
    "ConsentAction",
    "ConsentEvent",
    "ConsentMethod",
    "ConsentWording",
    "Delivery",
    "DeliveryState",
    "Document",
    "ForumDetailsRow",
    "Group",
    "JoinRequest",
    "MailKind",
    "Member",
    "MemberDeparture",
    "MemberStatus",
    "OutboxMessage",
    "OutboxState",
    "RateLimitCounter",
    "RecoveryCode",
    "SecurityPolicy",
    "SocialMedia",
    "SocialMediaQuestion",
    "Suppression",
    "UTCDateTime",
    "WorkerHeartbeat",
    "announcement_group",
    "enum_column",
    "member_group",
    "new_link_key",
    "table_of",
]
