"""Personal fields in announcements: `{{ name }}` and `{{ groups }}` in the subject and the body (issue 9).

Pure module. The admin's text is checked when it is saved (a misspelt field is refused with
its line, not sent as "{{ nmae }}" to everyone). When an announcement is rendered, each
placeholder becomes a slot marker *before* Markdown runs, so Markdown never reads a
member's name; each recipient's values are put in afterwards by MailTemplate.fill,
escaped for HTML, raw in the text part, header-safe in the Subject (render once, fill per
recipient: see announcement_mail.py).

Decisions:
- A member with no name is greeted as "parent or carer" (lower case, as in the transactional
  mails): admins write "Dear {{ name }}" or "Hello {{ name }}", which reads well either way.
- `{{ groups }}` is the member's group names in the join form's order, joined as
  "A, B and C"; a member in no group gets "the forum's email list".
- The public archive shows the generic words instead ("Dear parent or carer"): never a name."""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailer.errors import InvalidInput

FIELDS = ("name", "groups")
NAME_FALLBACK = "parent or carer"
GROUPS_FALLBACK = "the forum's email list"
PUBLIC_VALUES = {"name": NAME_FALLBACK, "groups": "the groups you chose"}

# `{{` then anything but braces or a line end, then `}}`: spaces inside the braces are allowed.
_PLACEHOLDER = re.compile(r"\{\{([^{}\n]*)\}\}")
_FIELD = re.compile(r"\s*([a-z_]+)\s*")


def _usable() -> str:
    return " and ".join(f"{{{{ {name} }}}}" for name in FIELDS)


def check_placeholders(text: str, *, field: str) -> None:
    """Refuse unknown or unfinished placeholders, naming the line and what was written.

    Raises InvalidInput(field=field) with a message an admin can act on."""
    for number, line in enumerate(text.split("\n"), start=1):
        where = f"Line {number}: " if field == "body" else "In the subject: "
        for match in _PLACEHOLDER.finditer(line):
            inner = _FIELD.fullmatch(match.group(1))
            if inner is None or inner.group(1) not in FIELDS:
                shown = " ".join(match.group(0).split())
                raise InvalidInput(
                    f"{where}{shown} is not a field you can use. You can use {_usable()}.", field=field
                )
        rest = _PLACEHOLDER.sub("", line)
        if "{{" in rest or "}}" in rest:
            raise InvalidInput(
                f"{where}a field is not written correctly: it must look like {{{{ name }}}}, "
                f"with two curly brackets on each side. You can use {_usable()}.",
                field=field,
            )


def mark_placeholders(text: str, slots: dict[str, str]) -> str:
    """Each known placeholder becomes its slot marker (text already checked when saved)."""

    def replace(match: re.Match[str]) -> str:
        inner = _FIELD.fullmatch(match.group(1))
        if inner is not None and inner.group(1) in slots:
            return slots[inner.group(1)]
        return match.group(0)

    return _PLACEHOLDER.sub(replace, text)


def fill_public(text: str) -> str:
    """The announcement as the public archive shows it: generic words, never a member's values."""
    return mark_placeholders(text, PUBLIC_VALUES)


def has_placeholders(text: str) -> bool:
    return any(
        (inner := _FIELD.fullmatch(m.group(1))) is not None and inner.group(1) in FIELDS
        for m in _PLACEHOLDER.finditer(text)
    )


def name_value(name: str | None) -> str:
    return (name or "").strip() or NAME_FALLBACK


def groups_value(group_names: Sequence[str]) -> str:
    """'A', 'A and B', 'A, B and C'; the fallback for a member in no group."""
    names = [n for n in group_names if n]
    if not names:
        return GROUPS_FALLBACK
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def member_values(name: str | None, group_names: Sequence[str]) -> dict[str, str]:
    """The values one member's copy is filled with."""
    return {"name": name_value(name), "groups": groups_value(group_names)}
