"""Signed links (Security): round trip, one salt per purpose, expiry on the injected clock, tampering, no address."""

from __future__ import annotations

import json

import pytest
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode

from mailer.clock import FrozenClock
from mailer.errors import TokenExpired, TokenInvalid
from mailer.mail.tokens import (
    Purpose,
    TokenMaker,
    make_token,
    make_web_view_token,
    read_token,
    read_web_view_token,
)
from mailer.models import new_link_key

SECRET = "test-only-secret"
# Fixed keys shaped like new_link_key()'s: random characters, so itsdangerous never compresses them.
K42, K5, K8, K3, K11, K1234 = ("Qm3xZ7-pL0aR9tWb_Kd2Yh", "vN8cJ1uE5sHq-Gk0Xo_4Bi", "T2dW9yLr6fA-Mz3Pq_8nCu",
                               "hX5_bK1oV7eJ-Rs4Ni0Gw2", "Lp9Fq2-Zc6Yv_Tm1Ud8Ea3", "sR4kW0_jD7nB-Hx2Oq5Ce9")
WEEK = 7 * 86400


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.mark.parametrize("purpose", list(Purpose))
def test_token_round_trips_ids_and_version(clock, purpose):
    """What make_token signs, read_token gives back: the member's link key and the token version."""
    token = make_token(SECRET, purpose, K42, 7, clock=clock)
    assert read_token(SECRET, purpose, token, clock=clock) == (K42, 7)
    assert read_token(SECRET, purpose, token, clock=clock, max_age_seconds=WEEK) == (K42, 7)


def test_tokens_are_url_safe(clock):
    """Links go in emails and URLs: only characters that need no escaping."""
    token = make_token(SECRET, Purpose.CONFIRM, K42, 99, clock=clock)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


@pytest.mark.parametrize("made_for", list(Purpose))
@pytest.mark.parametrize("read_as", list(Purpose))
def test_each_purpose_has_its_own_salt(clock, made_for, read_as):
    """An unsubscribe link cannot be used to confirm (or the other way round): salts separate purposes."""
    token = make_token(SECRET, made_for, K5, 1, clock=clock)
    if made_for is read_as:
        assert read_token(SECRET, read_as, token, clock=clock) == (K5, 1)
    else:
        with pytest.raises(TokenInvalid):
            read_token(SECRET, read_as, token, clock=clock)


def test_tokens_for_different_purposes_differ(clock):
    """Same member, same version, same moment: three different links."""
    tokens = {make_token(SECRET, purpose, K5, 1, clock=clock) for purpose in Purpose}
    assert len(tokens) == len(Purpose)


def test_confirmation_expires_on_the_injected_clock(clock):
    """J2: a 7-day link works at 7 days and fails a second later, by the clock the app was given."""
    token = make_token(SECRET, Purpose.CONFIRM, K8, 2, clock=clock)
    clock.advance(seconds=WEEK)
    assert read_token(SECRET, Purpose.CONFIRM, token, clock=clock, max_age_seconds=WEEK) == (K8, 2)
    clock.advance(seconds=1)
    with pytest.raises(TokenExpired) as caught:
        read_token(SECRET, Purpose.CONFIRM, token, clock=clock, max_age_seconds=WEEK)
    assert caught.value.link_key == K8  # so the page can offer a fresh link


def test_expiry_uses_the_signing_clock_too(clock):
    """The timestamp inside the token is the injected clock's time, not the machine's."""
    token = make_token(SECRET, Purpose.CONFIRM, K8, 2, clock=clock)
    later = FrozenClock(clock.now())
    later.advance(days=8)
    with pytest.raises(TokenExpired):
        read_token(SECRET, Purpose.CONFIRM, token, clock=later, max_age_seconds=WEEK)
    almost = FrozenClock(clock.now())
    almost.advance(days=6, hours=23)
    assert read_token(SECRET, Purpose.CONFIRM, token, clock=almost, max_age_seconds=WEEK) == (K8, 2)


def test_without_max_age_a_token_never_expires(clock):
    """Unsubscribe links never expire (Security): no max age, no expiry, even years later."""
    token = make_token(SECRET, Purpose.UNSUBSCRIBE, K3, 1, clock=clock)
    clock.advance(days=3650)
    assert read_token(SECRET, Purpose.UNSUBSCRIBE, token, clock=clock) == (K3, 1)


def _replace(token: str, index: int) -> str:
    return token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]


def test_any_changed_character_is_refused(clock):
    """Tampering anywhere, in payload, timestamp or signature, makes the link invalid, never another member's."""
    token = make_token(SECRET, Purpose.CONFIRM, K11, 1, clock=clock)
    # The last character of each base64 part may carry padding bits only, so skip those.
    ends = {i - 1 for i, c in enumerate(token) if c == "."} | {len(token) - 1}
    for index in range(len(token)):
        if token[index] == "." or index in ends:
            continue
        with pytest.raises(TokenInvalid):
            read_token(SECRET, Purpose.CONFIRM, _replace(token, index), clock=clock, max_age_seconds=WEEK)


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_truncated_token_is_refused(clock, cut):
    """A link cut short by a mail client is invalid, not an error."""
    token = make_token(SECRET, Purpose.CONFIRM, K11, 1, clock=clock)
    with pytest.raises(TokenInvalid):
        read_token(SECRET, Purpose.CONFIRM, token[:-cut], clock=clock)


@pytest.mark.parametrize("token", ["", ".", "..", "a.b.c", "not-a-token", "x" * 501, "é.é.é", "\x00"])
def test_garbage_is_refused(clock, token):
    """Anything that is not one of our tokens is TokenInvalid, never an unexpected exception."""
    with pytest.raises(TokenInvalid):
        read_token(SECRET, Purpose.CONFIRM, token, clock=clock, max_age_seconds=WEEK)


def test_another_secret_is_refused(clock):
    """A token signed with another key (another installation, an old key) is invalid."""
    token = make_token("another-secret", Purpose.CONFIRM, K11, 1, clock=clock)
    with pytest.raises(TokenInvalid):
        read_token(SECRET, Purpose.CONFIRM, token, clock=clock)


@pytest.mark.parametrize("payload", [{"email": "a@example.org"}, [1], [1, 2, 3], ["1", 2], [True, 1], [1.5, 1], None,
                                     [42, 1], ["short", 1], ["a" * 22 + '"', 1], [K42, True], [K42, "1"]])
def test_correctly_signed_but_wrong_shape_is_refused(clock, payload):
    """Even with our key and salt, a payload that is not [link key, version] is refused (an old id-style
    link included: it could name whoever has that id now)."""
    serializer = URLSafeTimedSerializer(SECRET, salt=f"mailer.{Purpose.CONFIRM.value}")
    token = serializer.dumps(payload)
    with pytest.raises(TokenInvalid):
        read_token(SECRET, Purpose.CONFIRM, token, clock=clock)


def test_payload_holds_the_link_key_never_the_address_or_id(clock):
    """Security: a forwarded or logged link shows a random key and a version: no address, no member id."""
    for purpose in Purpose:
        token = make_token(SECRET, purpose, K1234, 5, clock=clock)
        payload_part = token.split(".")[0]
        assert payload_part, "payload is not compressed for such a small value"
        decoded = json.loads(base64_decode(payload_part))
        assert decoded == [K1234, 5]
        assert "@" not in token


@pytest.mark.parametrize("purpose", list(Purpose))
def test_token_maker_writes_exactly_what_itsdangerous_writes(clock, purpose):
    """The fast TokenMaker gives the same string as itsdangerous for every purpose, id and second."""
    maker = TokenMaker("s3cret", clock)
    for link_key, version in [(new_link_key(), 1), (new_link_key(), 3), (K42, 1), (K1234, 42), (K5, 0)]:
        assert maker.make(purpose, link_key, version) == make_token("s3cret", purpose, link_key, version, clock=clock)
    clock.advance(seconds=1)  # the cached timestamp moves on with the clock
    fresh = maker.make(purpose, K5, 2)
    assert fresh == make_token("s3cret", purpose, K5, 2, clock=clock)
    assert read_token("s3cret", purpose, fresh, clock=clock) == (K5, 2)


def test_token_maker_refuses_anything_but_a_link_key_and_a_version(clock):
    """Only a link key and a version go into a link: an address, an id or a quote is refused, not signed."""
    maker = TokenMaker("s3cret", clock)
    for who in ("parent@example.org", 42, 'a' * 21 + '"', "short"):
        with pytest.raises(TypeError):
            maker.make(Purpose.UNSUBSCRIBE, who, 1)  # type: ignore[arg-type]


def test_web_view_tokens_name_an_announcement_and_refuse_tampering() -> None:
    """Issue 17.4: a web-view token reads back as its announcement id, never expires, and anything
    tampered, truncated, signed with another key or made for another purpose is TokenInvalid."""
    token = make_web_view_token(SECRET, 42)
    assert read_web_view_token(SECRET, token) == 42
    unsubscribe = make_token(SECRET, Purpose.UNSUBSCRIBE, "k" * 22, 1, clock=FrozenClock())
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), token[:-3], "42", "", "x" * 300, unsubscribe,
                make_web_view_token("another-secret-key-of-enough-length", 42)):
        with pytest.raises(TokenInvalid):
            read_web_view_token(SECRET, bad)
    with pytest.raises(TypeError):
        make_web_view_token(SECRET, 0)
