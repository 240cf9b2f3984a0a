"""Issue 17.3 (E8): the preheader is the first sentence of the body's paragraphs, plain text, short, and goes
first in the layout's <body>, hidden."""

from __future__ import annotations

from mailer.mail.compose import render_markdown
from mailer.mail.emails import PREHEADER_MAX, preheader_text, with_preheader


def test_first_sentence_of_the_paragraphs_without_headings_or_markup():
    """The heading is left out, links and emphasis become their words, entities are decoded."""
    html = render_markdown("# Council news\n\nThe **council** wrote [to us](https://x.example) & others. More.")
    assert preheader_text(html) == "The council wrote to us & others."


def test_a_greeting_runs_on_into_the_next_paragraph():
    """'Dear Pat,' alone is no preview: the sentence continues into the next paragraph."""
    assert preheader_text(render_markdown("Dear Pat,\n\nThe survey closes on Friday! Please reply.")) == (
        "Dear Pat, The survey closes on Friday!"
    )


def test_a_long_sentence_is_cut_at_a_word_and_an_empty_body_gives_none():
    """Over PREHEADER_MAX characters the sentence ends at a whole word with an ellipsis; no paragraph: empty."""
    long = preheader_text(render_markdown("word " * 80))
    assert len(long) <= PREHEADER_MAX + 1 and long.endswith("word\u2026")
    assert preheader_text(render_markdown("# Only a heading")) == ""


def test_the_preheader_goes_first_in_the_body_and_is_escaped():
    """It is inserted straight after <body ...> in any layout, its text escaped; none when empty."""
    document = '<html><body class="x"><p>Hi</p></body></html>'
    out = with_preheader(document, "Fish & <chips>")
    assert out.startswith('<html><body class="x">\n<div class="preheader" aria-hidden="true"')
    assert "Fish &amp; &lt;chips&gt;\n&#847;&nbsp;" in out
    assert with_preheader(document, "") == document
