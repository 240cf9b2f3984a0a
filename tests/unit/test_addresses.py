"""Addresses as the join form, imports and the engine use them: only what every mail server takes."""

from __future__ import annotations

import pytest

from mailer.errors import InvalidInput
from mailer.members.addresses import normalise_address


def test_international_domain_is_kept_in_its_ascii_form():
    """A domain with accents is stored as IDNA (xn--), so the RCPT line and To header are plain ASCII."""
    email, key = normalise_address("Parent@Exämple.org")
    assert email == "Parent@xn--exmple-cua.org"
    assert key == "parent@xn--exmple-cua.org"
    assert normalise_address("parent@xn--exmple-cua.org")[1] == key  # both spellings are one member


@pytest.mark.parametrize("raw", ["zoë@example.org", "用户@example.org"])
def test_accented_letters_before_the_at_are_refused_with_a_clear_reason(raw):
    """A local part that would need SMTPUTF8 is refused at the door, saying why, not accepted and never sent."""
    with pytest.raises(InvalidInput) as refused:
        normalise_address(raw)
    assert "accented" in str(refused.value) and refused.value.field == "email"
