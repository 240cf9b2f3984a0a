"""Issue 17 (J4, RFC 8058): one-click unsubscribe is forgiving about how the token arrives (a trailing CRLF,
multipart/form-data, a bare body) and still refuses, with a clear 400 that changes nothing, any body that is
not the one-click token and carries no form security token."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from mailer.extensions import db
from mailer.mail.tokens import Purpose, make_token
from mailer.models import ConsentAction, ConsentEvent, ConsentMethod, Member, MemberStatus
from support.factories import add_member, link_key_of

BOUNDARY = "mailerTestBoundary42"


def multipart(value: str) -> tuple[str, bytes]:
    """A multipart/form-data body with one field, written out by hand as a mail provider would send it."""
    body = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n{value}\r\n"
        f"--{BOUNDARY}--\r\n"
    )
    return f"multipart/form-data; boundary={BOUNDARY}", body.encode()


FORM = "application/x-www-form-urlencoded"
ACCEPTED = {
    "form": (FORM, b"List-Unsubscribe=One-Click"),
    "form-crlf": (FORM, b"List-Unsubscribe=One-Click\r\n"),
    "form-spaces-lf": (FORM, b"List-Unsubscribe=One-Click \n"),
    "multipart": multipart("One-Click"),
    "multipart-crlf": multipart("One-Click\r\n"),
    "no-content-type-crlf": (None, b"List-Unsubscribe=One-Click\r\n"),
    "text-plain": ("text/plain", b"List-Unsubscribe=One-Click"),
}
REFUSED = {
    "empty": (FORM, b""),
    "other-value": (FORM, b"List-Unsubscribe=Yes"),
    "token-with-more": (FORM, b"List-Unsubscribe=One-Click-Please"),
    "lower-case-name": (FORM, b"list-unsubscribe=One-Click"),
    "multipart-other": multipart("No"),
    "text-other": ("text/plain", b"unsubscribe me"),
    "long-bare-body": (None, b"List-Unsubscribe=One-Click" + b" " * 200 + b"x"),
}


def member_with_link(app: Any, clock: Any) -> tuple[int, str]:
    with app.app_context():
        member_id = add_member("one.click@example.org", clock=clock)
    token = make_token(app.config["SECRET_KEY"], Purpose.UNSUBSCRIBE, link_key_of(app, member_id), 1, clock=clock)
    return member_id, f"/unsubscribe/{token}"


def post(client: Any, path: str, content_type: str | None, body: bytes) -> Any:
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post(path, data=body, headers=headers)


def state(app: Any, member_id: int) -> tuple[MemberStatus, list[ConsentMethod]]:
    with app.app_context():
        status = db.session.get(Member, member_id).status  # type: ignore[union-attr]
        methods = db.session.scalars(
            select(ConsentEvent.method).where(ConsentEvent.action == ConsentAction.WITHDRAWN)
        ).all()
        return status, list(methods)


@pytest.mark.parametrize(("content_type", "body"), list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_one_click_body_unsubscribes_however_it_is_wrapped(app: Any, client: Any, clock: Any, content_type: str | None,
                                                            body: bytes) -> None:
    """RFC 8058's List-Unsubscribe=One-Click unsubscribes with a trailing CRLF, as multipart/form-data, or as a
    bare body, without cookie or CSRF token, recorded as a one-click withdrawal."""
    member_id, path = member_with_link(app, clock)
    response = post(client, path, content_type, body)
    assert response.status_code == 200 and "You are unsubscribed" in response.get_data(as_text=True)
    assert state(app, member_id) == (MemberStatus.UNSUBSCRIBED, [ConsentMethod.ONE_CLICK])


@pytest.mark.parametrize("database_uri", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("content_type", "body"), list(REFUSED.values()), ids=list(REFUSED))
def test_a_body_that_is_not_the_one_click_token_is_refused(app: Any, client: Any, clock: Any, content_type: str | None,
                                                          body: bytes) -> None:
    """Without the one-click token (and without the form's CSRF token) the POST gets the clear 400 "Please try
    again" page, never a 500, and the member stays a member with no consent event added."""
    member_id, path = member_with_link(app, clock)
    with app.app_context():
        events = db.session.scalar(select(func.count()).select_from(ConsentEvent))
    response = post(client, path, content_type, body)
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "Please try again" in page and "Nothing was changed" in page
    assert state(app, member_id) == (MemberStatus.MEMBER, [])
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == events
