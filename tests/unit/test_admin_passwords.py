"""What a new admin password must be (V4, issue 19): long enough and not commonly used."""

from __future__ import annotations

import pytest

from mailer.admins.passwords import check_new_password, common_passwords
from mailer.errors import InvalidInput


def test_the_shipped_list_is_the_ten_thousand_most_common_passwords():
    """The list file ships whole (SecLists 10k-most-common) and is read once, lower-cased."""
    assert len(common_passwords()) >= 9900
    assert {"password", "123456", "qwerty", "trustno1"} <= common_passwords()


@pytest.mark.parametrize(
    "password",
    ["Password1234!", "trustno1trustno1", "baseballbaseball", "  Football 2024!!  ", "change-me-please",
     "someone@example.org"],
)
def test_common_passwords_and_the_address_are_refused(password):
    """A listed password with digits or punctuation added, repeated, or with spaces; the development password;
    the admin's own address: each refused on the password field."""
    with pytest.raises(InvalidInput) as refused:
        check_new_password(password, email="someone@example.org")
    assert refused.value.field == "password"
    assert "too easy to guess" in str(refused.value)


def test_short_and_overlong_passwords_are_refused_and_a_passphrase_accepted():
    """Minimum 12 characters (as create-admin), maximum 1000; four unrelated words pass."""
    with pytest.raises(InvalidInput, match="at least 12 characters"):
        check_new_password("abcdefghijk")
    with pytest.raises(InvalidInput, match="too long"):
        check_new_password("x" * 1001)
    check_new_password("kettle orchard lantern pebble", email="someone@example.org")
