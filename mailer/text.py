"""Text that people type or send us: one rule for the characters that can never be part of it.

C0 and C1 control characters, DEL and the Unicode line and paragraph separators can start a header
line, hide text on a page or break a CSV file; names, subjects, addresses and the evidence we keep
(user agents) are all checked or cleaned against this one set (E3, C1)."""

from __future__ import annotations

import re

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control_characters(value: str) -> bool:
    return CONTROL_CHARACTERS.search(value) is not None


def without_control_characters(value: str) -> str:
    return CONTROL_CHARACTERS.sub("", value)
