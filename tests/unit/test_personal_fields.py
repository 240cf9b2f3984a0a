"""The placeholder parser (issue 9): strict about names and shape, relaxed about spaces inside the braces."""

from __future__ import annotations

import pytest

from mailer.errors import InvalidInput
from mailer.mail.personal_fields import check_placeholders, fill_public, mark_placeholders, member_values


@pytest.mark.parametrize("text", ["Dear {{name}}", "Dear {{ name }}", "{{   groups   }} and {{ name }}", "No fields"])
def test_known_fields_with_any_spacing_are_accepted(text):
    """Admins type spaces inside the braces or not; both are the same field."""
    check_placeholders(text, field="body")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ok\n\n{{ nmae }}", "Line 3: {{ nmae }} is not a field you can use."),
        ("{{ Name }}", "Line 1: {{ Name }} is not a field you can use."),
        ("{{ name | upper }}", "Line 1: {{ name | upper }} is not a field you can use."),
        ("{{}}", "Line 1: {{}} is not a field you can use."),
        ("Dear {{ name }", "Line 1: a field is not written correctly"),
        ("Dear name }}", "Line 1: a field is not written correctly"),
        ("{{ name\n}}", "Line 1: a field is not written correctly"),
    ],
)
def test_unknown_or_broken_fields_are_refused_with_the_line(text, message):
    """The message names the line and what was written, and lists what can be used."""
    with pytest.raises(InvalidInput) as caught:
        check_placeholders(text, field="body")
    assert str(caught.value).startswith(message)
    assert "You can use {{ name }} and {{ groups }}." in str(caught.value)
    assert caught.value.field == "body"


def test_markers_replace_fields_and_public_text_names_nobody():
    """Rendering swaps fields for slot markers; the archive gets the generic words."""
    assert mark_placeholders("Hi {{name}}, {{ groups }}", {"name": "S0X", "groups": "S1X"}) == "Hi S0X, S1X"
    assert fill_public("Dear {{ name }}") == "Dear parent or carer"
    assert member_values("  ", []) == {"name": "parent or carer", "groups": "the forum's email list"}
    assert member_values("Zoë", ["A", "B"]) == {"name": "Zoë", "groups": "A and B"}
