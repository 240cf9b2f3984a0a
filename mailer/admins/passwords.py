"""What a new admin password must be (V4): long enough, and not one of the commonly used ones.

The list is SecLists' "10k-most-common.txt" (Passwords/Common-Credentials, MIT licence), shipped unchanged as
common_passwords.txt. Most of its entries are already shorter than the minimum; it is compared ignoring case,
spaces and the digits and punctuation people add at the end ("Password123!"), and a common password repeated
("trustno1trustno1") counts as that password."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from mailer.admins.accounts import DEV_ADMIN_PASSWORD, MIN_PASSWORD_LENGTH
from mailer.errors import InvalidInput

MAX_PASSWORD_LENGTH = 1000
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")
_DECORATION = re.compile(r"[\W\d_]+$")


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list, lower-cased (read once per process)."""
    with COMMON_PASSWORDS_FILE.open(encoding="utf-8") as lines:
        return frozenset(line.strip().lower() for line in lines if line.strip())


def _forms(password: str) -> set[str]:
    """The password as compared: lower case without spaces, without what is added at the end, and the unit of a
    repetition ("trustno1trustno1")."""
    plain = "".join(password.lower().split())
    forms = {plain, _DECORATION.sub("", plain)}
    for size in range(1, len(plain) // 2 + 1):
        if len(plain) % size == 0 and plain[:size] * (len(plain) // size) == plain:
            forms.add(plain[:size])
            break
    return forms


def check_new_password(password: str, *, email: str = "") -> None:
    """Raise InvalidInput (field "password") unless `password` may be used by the admin with address `email`."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.", field="password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput("The password is too long.", field="password")
    forms = _forms(password)
    local_part = email.lower().partition("@")[0]
    if (
        forms & common_passwords()
        or DEV_ADMIN_PASSWORD in forms
        or (email and (email.lower() in forms or (len(local_part) >= 4 and local_part in forms)))
    ):
        raise InvalidInput(
            "This password is too easy to guess: it is one of the most commonly used passwords, or your email "
            "address. Choose another, for example three or four unrelated words.",
            field="password",
        )
