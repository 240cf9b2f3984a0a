"""Domain exceptions. Views turn them into pages in one table (mailer.web.errors).

Nothing here imports Flask: the domain raises facts, the caller decides what to show."""

from __future__ import annotations


class MailerError(Exception):
    """Base of every domain exception."""

    message = "Something went wrong."

    def __str__(self) -> str:
        return self.args[0] if self.args else self.message


class TokenInvalid(MailerError):
    message = "This link is not valid. It may have been copied incompletely or replaced by a newer one."


class TokenExpired(MailerError):
    message = "This link has expired."

    def __init__(self, link_key: str | None = None) -> None:
        super().__init__()
        self.link_key = link_key


class InvalidInput(MailerError):
    """Bad user input; `field` names the form field it belongs to, when there is one."""

    message = "Some of the information given is not valid."

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(*([message] if message else []))
        self.field = field


class Suppressed(MailerError):
    message = "This address must not be mailed."


class NotPending(MailerError):
    message = "This membership is not waiting for confirmation."


class SmtpUnavailable(MailerError):
    """The mail server could not be reached at all; nothing is the message's fault."""

    message = "The mail server could not be reached."


class WrongState(MailerError):
    """The action does not fit the announcement's state (e.g. editing one that is sending)."""

    message = "This cannot be done at this stage."


class TransitionRefused(WrongState):
    """An announcement's state does not allow this change (mailer.announcements.states), perhaps because
    someone else (an admin, the worker) changed it first. Nothing was changed.

    `state` is the state it is in now (None: it no longer exists); `action` what was asked."""

    def __init__(self, announcement_id: int, action: str, state: str | None, message: str) -> None:
        super().__init__(message)
        self.announcement_id, self.action, self.state = announcement_id, action, state


class CheckOutdated(WrongState):
    """What the check page showed is no longer true (the draft, its audience or its gaps changed): check again."""

    message = "This announcement changed after you checked it. Check it again before sending."


class NobodyToSend(WrongState):
    message = "Nobody is in this announcement's audience, so there is nobody to send it to. Choose who gets it."


class GapsLeft(WrongState):
    message = "This announcement has gaps to fill in before it can be sent."


class BounceTooLarge(MailerError):
    """A message sent to the bounce address is bigger than we keep (issue 8); it is refused, not stored."""

    message = "This message is too large for the bounce mailbox."

    def __init__(self, size: int, limit: int) -> None:
        super().__init__()
        self.size, self.limit = size, limit


class StorageFull(MailerError):
    """The disk (or the quota, or the file size limit) has no room for a file we were writing.

    The partial file is already removed when this is raised; nothing half-written is kept."""

    message = (
        "There is not enough space on the server to keep this file, so nothing was saved. "
        "Ask whoever looks after the server to free some space, then try again."
    )


class LinkUnusable(MailerError):
    """An emailed admin link (invitation, password reset, new address) that cannot be used: tampered, replaced by
    a newer one, withdrawn, expired or already used (V4). Nothing was changed."""

    message = "This link does not work. It may have been copied incompletely or replaced by a newer one."


class LastOwner(MailerError):
    """Removing or demoting this admin would leave nobody who can run the service (V4). Nothing was changed."""

    message = (
        "There must always be at least one owner, and this is the last one. "
        "Make another admin an owner first, then try again."
    )


class AdminGone(MailerError):
    """The admin or invitation named no longer exists (another owner removed it first)."""

    message = "That admin or invitation no longer exists. Someone may have removed it a moment ago."

class NotPermitted(MailerError):
    """The admin's role does not allow this (e.g. a sender ending another admin's session). Nothing was changed."""

    message = "Your role does not allow this."
