"""Nothing unfinished goes out (V2, issue 18): what find_gaps calls a gap, by line, and what it leaves alone."""

from __future__ import annotations

from mailer.announcements.check import audience_words, when_words
from mailer.announcements.gaps import BRACKETS, DOCUMENT, EMPTY, EXAMPLE, FIELD, LINK, find_gaps


def kinds(subject: str, body: str, **options: object) -> list[tuple[str, int | None, str]]:
    return [(g.kind, g.line, g.found) for g in find_gaps(subject, body, **options)]  # type: ignore[arg-type]


def test_template_gaps_in_square_brackets_are_found_by_line_but_links_are_not():
    """V2: `[your name]` is a gap, on its line; `[text](url)`, `[text][ref]`, `[ref]: url`, images and `[ ]` are not."""
    body = (
        "Dear {{ name }},\n"
        "We wrote about [say what it is about].\n"
        "[Read the letter](https://council.gov.uk/letter) and ![logo](https://forum.org.uk/logo.png)\n"
        "See [the plan][plan] and tick [ ] or [x].\n"
        "[plan]: https://forum.org.uk/plan\n"
        "[your name], for the steering group"
    )
    assert kinds("News", body) == [(BRACKETS, 2, "[say what it is about]"), (BRACKETS, 6, "[your name]")]
    assert kinds("You are invited: [meeting name]", "Hello.") == [(BRACKETS, None, "[meeting name]")]


def test_confirmed_brackets_are_not_gaps_but_new_ones_are():
    """V2: brackets an admin said are meant stay quiet; a bracket added afterwards is still caught."""
    body = "Our group [Local Offer] meets soon.\nBring [your name]."
    assert kinds("News", body, meant_brackets=["[Local Offer]"]) == [(BRACKETS, 2, "[your name]")]


def test_empty_subject_or_body_and_links_to_nowhere_are_gaps():
    """V2: an empty subject or message, `](`, http:// with no host, a link without https://, example domains."""
    assert [k for k, _, _ in kinds(" ", "")] == [EMPTY, EMPTY]
    body = (
        "[one]()\n"
        "[two](http://)\n"
        "[three](www.forum.org.uk)\n"
        "[four](https://example.org/replace-with-the-survey-link) and https://www.example.com/x\n"
        "[five](mailto:hello@forum.org.uk) [six](https://forum.org.uk/ok) https://forum.org.uk/fine"
    )
    assert kinds("Links", body) == [
        (LINK, 1, "]("), (LINK, 2, "http://"), (LINK, 3, "www.forum.org.uk"),
        (EXAMPLE, 4, "https://example.org/replace-with-the-survey-link"), (EXAMPLE, 4, "https://www.example.com/x"),
    ]


def test_personal_field_mistakes_and_removed_documents_are_gaps():
    """V2: `{{ nmae }}` is named with its line; a link to /documents/<id>/ is a gap unless that document exists."""
    body = "Dear {{ nmae }},\n[Letter](https://forum.test/documents/abc123/letter.pdf)\n[Kept](https://forum.test/documents/kept1/a.pdf)"
    found = find_gaps("Hi {{ name }}", body, existing_documents=["kept1"])
    assert [(g.kind, g.line) for g in found] == [(FIELD, 1), (DOCUMENT, 2)]
    assert "{{ nmae }} is not a field you can use" in found[0].message
    assert found[0].where == "Line 1" and "removed" in found[1].message


def test_audience_and_time_in_words():
    """V1: the check page says who in words and when in UK time: today, tomorrow, or the day and date."""
    from datetime import UTC, datetime

    assert audience_words([], False) == "all members"
    assert audience_words(["Local Offer working group"], True) == (
        "members of Local Offer working group who said they do not use social media"
    )
    assert audience_words(["A", "B", "C"], False) == "members of A, B or C"
    now = datetime(2026, 5, 8, 16, 0, tzinfo=UTC)  # Friday 8 May, 17:00 in London (BST)
    assert when_words(datetime(2026, 5, 8, 17, 0, tzinfo=UTC), now) == "today at 18:00"
    assert when_words(datetime(2026, 5, 8, 17, 0, 45, tzinfo=UTC), now, seconds=True) == "today at 18:00:45"
    assert when_words(datetime(2026, 5, 9, 8, 30, tzinfo=UTC), now) == "tomorrow at 09:30"
    assert when_words(datetime(2026, 5, 15, 11, 0, tzinfo=UTC), now) == "Friday 15 May at 12:00"
    assert when_words(datetime(2027, 1, 4, 12, 0, tzinfo=UTC), now) == "Monday 4 January 2027 at 12:00"
