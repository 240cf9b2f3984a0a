"""The reading-age hint (V3, issue 18.4): Markdown reduced to what a member reads, the longest sentences named."""

from __future__ import annotations

from pathlib import Path

from mailer.announcements.readability import TARGET_READING_AGE, plain_sentences, reading_hint

REVISIT = (Path(__file__).resolve().parents[1] / "data" / "samples" / "revisit-survey.md").read_text(encoding="utf-8")


def test_markdown_marks_links_and_fields_are_not_words():
    """Headings and list items are sentences of their own; link targets, ** and {{ fields }} are left out."""
    sentences = plain_sentences(
        "# Have your say\n\nDear {{ name }}, the **survey** is [here](https://forms.example/s). It is short.\n\n"
        "- Opens 1 May\n- Closes 10 May"
    )
    assert sentences == [
        "Have your say", "Dear Sam, the survey is here.", "It is short.", "Opens 1 May", "Closes 10 May",
    ]


def test_short_text_gets_no_figure_but_names_its_longest_sentences():
    """Under 20 words there is no reading age (the formula means nothing), but the longest sentences still show."""
    hint = reading_hint("Come to the coffee morning. It is on Friday at ten.")
    assert hint.reading_age is None and not hint.above_target
    assert hint.longest == ("It is on Friday at ten.", "Come to the coffee morning.")


def test_long_sentences_raise_the_reading_age_above_the_target():
    """A letter of long, formal sentences is above GOV.UK's reading age of about 9; short plain ones are not."""
    formal = ("The local area partnership, which includes the council, health services and education settings, "
              "is required to demonstrate improvements in the identification and assessment of children's needs. ") * 3
    plain = "We want to hear from you. Tell us what has changed. The survey takes five minutes. " * 3
    assert reading_hint(formal).above_target
    assert reading_hint(plain).reading_age is not None and reading_hint(plain).reading_age <= TARGET_READING_AGE
    sample = reading_hint(REVISIT)
    assert sample.reading_age is not None and len(sample.longest) == 2
    assert len(sample.longest[0].split()) >= len(sample.longest[1].split())
