"""One rule for control characters in text people send us (issue 16): names, subjects and addresses are
refused with the same set, and evidence (user agents) is cleaned with it."""

from __future__ import annotations

import pytest

from mailer.errors import InvalidInput
from mailer.members.addresses import normalise_address
from mailer.members.membership import clean_name
from mailer.text import has_control_characters, without_control_characters

CONTROLS = ["\x00", "\r", "\n", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", CONTROLS)
def test_every_kind_of_control_character_is_caught_and_removed(char):
    """C0, DEL, C1 (the NEL and CSI a terminal obeys) and the Unicode line separators, all alike."""
    assert has_control_characters(f"Zoe{char}Parent")
    assert without_control_characters(f"Zoe{char}Parent") == "ZoeParent"


@pytest.mark.parametrize("char", CONTROLS)
def test_names_and_addresses_refuse_the_same_set(char):
    """A C1 character is refused in a name and in an address, not only some of them in some places."""
    with pytest.raises(InvalidInput):
        clean_name(f"Zoe{char}Parent")
    with pytest.raises(InvalidInput):
        normalise_address(f"zoe{char}@example.org")


def test_ordinary_text_passes_untouched():
    """Accents, emoji, tabs-free punctuation and right-to-left scripts are text, not controls."""
    for value in ("Zoë O'Brien-Smith", "نور", "Parent 👋", "Jo & Sam (carers)"):
        assert not has_control_characters(value)
        assert without_control_characters(value) == value
