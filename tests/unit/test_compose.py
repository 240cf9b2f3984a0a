"""Tests for mailer.mail.compose: Markdown -> sanitised HTML + equivalent plain text."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mailer.mail.compose import (
    SLOT_WIDTH,
    Slots,
    block_end,
    fit_block,
    html_to_text,
    render_parts,
    sanitise_html,
    shorten_url,
)

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
SAMPLE_NAMES = ["revisit-survey.md", "communication-update.md"]
ALLOWED_TAGS = {
    "p", "br", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "s", "del",
    "ul", "ol", "li", "a", "blockquote", "code", "pre", "hr",
    "table", "thead", "tbody", "tr", "th", "td",
}
INLINE_TAGS = {"a", "strong", "em", "b", "i", "s", "del", "code", "span"}


# ---------------------------------------------------------------- helpers


class _HtmlFacts(HTMLParser):
    """Collects visible text (with a space at block boundaries), tags, attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.visible: list[str] = []
        self.hrefs: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            self.attrs.append((tag, name, value or ""))
            if tag == "a" and name == "href" and value:
                self.hrefs.append(value)
        if tag not in INLINE_TAGS:
            self.visible.append(" ")

    def handle_endtag(self, tag):
        if tag not in INLINE_TAGS:
            self.visible.append(" ")

    def handle_data(self, data):
        self.visible.append(data)


def html_facts(html: str) -> _HtmlFacts:
    facts = _HtmlFacts()
    facts.feed(html)
    facts.close()
    return facts


def tokens(text: str) -> list[str]:
    """Words (runs of word characters) and single punctuation/symbol characters."""
    return re.findall(r"\w+|[^\w\s]", text)


def link_in_text(href: str) -> str:
    return href[len("mailto:"):] if href.lower().startswith("mailto:") else href


def assert_same_words_and_links(html: str, text: str) -> None:
    """Every href is in the text, and the HTML's visible words appear in order in it."""
    facts = html_facts(html)
    for href in facts.hrefs:
        assert link_in_text(href) in text, f"link {href!r} missing from text:\n{text}"
    want = tokens("".join(facts.visible))
    have = tokens(text)
    i = 0
    for j, tok in enumerate(want):
        while i < len(have) and have[i] != tok:
            i += 1
        assert i < len(have), (
            f"word {tok!r} (#{j}, after {want[max(0, j - 5):j]}) missing or out of order in text:\n{text}"
        )
        i += 1
    # ...and the text adds no words of its own (besides link targets and list numbers).
    allowed = {w for w in want if w[0].isalnum()}
    for href in facts.hrefs:
        allowed.update(tokens(href))
    extra = {w for w in have if w[0].isalnum() and not w.isdigit()} - allowed
    assert not extra, f"text has words not in the HTML: {sorted(extra)}"


def assert_well_formed_text(text: str) -> None:
    """One final newline, no trailing spaces, never two blank lines in a row."""
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert text == "\n" or not text.startswith("\n")
    for line in text.split("\n"):
        assert line == line.rstrip(), f"trailing space in {line!r}"
    assert "\n\n\n" not in text


def assert_safe_html(html: str) -> None:
    """Only allow-listed elements and attributes, and only http/https/mailto links."""
    facts = html_facts(html)
    assert set(facts.tags) <= ALLOWED_TAGS, set(facts.tags) - ALLOWED_TAGS
    for tag, name, value in facts.attrs:
        assert (tag, name) in {("a", "href"), ("a", "title"), ("a", "rel"), ("ol", "start"),
                               ("th", "align"), ("td", "align")}, (tag, name, value)
        if name == "href":  # relative hrefs (placeholders filled in later) are allowed
            assert urlsplit(value).scheme.lower() in {"", "http", "https", "mailto"}, value


def parts(markdown: str) -> tuple[str, str]:
    html, text = render_parts(markdown)
    assert_safe_html(html)
    assert_well_formed_text(text)
    assert_same_words_and_links(html, text)
    return html, text


def read_sample(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


# ---------------------------------------------------------------- the helper itself


def test_checker_rejects_missing_word_missing_link_and_reordering():
    """The same-words-and-links helper fails when text drops a word or link or reorders."""
    html = '<p>Read <a href="https://example.org/a">the guide</a> today.</p>'
    assert_same_words_and_links(html, "Read the guide (https://example.org/a) today.\n")
    for bad in (
        "Read the guide today.\n",                            # link missing
        "Read guide (https://example.org/a) today.\n",        # word missing
        "Read today the guide (https://example.org/a).\n",    # order changed
        "Read the guide (https://example.org/a) today now.\n",  # extra word
    ):
        with pytest.raises(AssertionError):
            assert_same_words_and_links(html, bad)


# ---------------------------------------------------------------- samples


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_sample_parts_carry_same_words_and_links(name):
    """Each sample renders to safe HTML and a text part with the same words and links."""
    html, text = parts(read_sample(name))
    assert html.startswith("<h1>")
    assert max(len(line) for line in text.splitlines()) < 998


def test_revisit_survey_links_and_headings():
    """Revisit sample: labelled link as 'label (url)', autolink and addresses shown once."""
    html, text = parts(read_sample("revisit-survey.md"))
    survey = ("https://www.smartsurvey.co.uk/s/BuryRe-VisitLASEND/?src=email&utm_campaign=none"
              "&ref=forum-newsletter-2019-05-revisit-parents-and-carers-who-do-not-use-social-media")
    guide = "https://www.gov.uk/government/publications/send-guide-for-parents-and-carers"
    assert f'href="{survey.replace("&", "&amp;")}"' in html
    assert f'<a href="{guide}"' in html
    assert 'href="mailto:informationrequest@ofsted.gov.uk"' in html
    assert 'href="mailto:information.access@cqc.org.uk"' in html

    assert "Bury re-visit survey for parents and carers\n   (" + survey + ")" in text
    assert text.count(guide) == 1
    assert text.count("informationrequest@ofsted.gov.uk") == 1
    assert text.count("information.access@cqc.org.uk") == 1
    assert "Inspectors are coming back: have your say by 10 May\n" + "=" * 51 + "\n" in text
    assert "\nTwo ways to take part\n---------------------\n" in text
    assert "\n- joint commissioning of services\n" in text
    assert "\n1. Online survey. It opens" in text and "\n2. Open meeting on Monday" in text
    assert "**" not in text and "<strong>" not in text


def test_long_line_wrapped_as_whole_words():
    """The 1,000+ octet paragraph is wrapped at 76 without losing or splitting a word."""
    source = read_sample("revisit-survey.md")
    long_line = max(source.splitlines(), key=len)
    assert len(long_line.encode("utf-8")) > 998
    html, text = parts(source)
    assert long_line in html  # HTML keeps the paragraph as is (the MIME layer encodes it)
    start = text.index("During the re-visit")
    end = text.index("line-length rule.") + len("line-length rule.")
    paragraph = text[start:end]
    assert paragraph.split() == long_line.split()
    assert all(len(line) <= 76 for line in paragraph.splitlines())
    assert len(paragraph.splitlines()) >= 14


def test_non_ascii_text_survives():
    """Curly quotes, dashes, accents, £ and emoji come through in both parts."""
    html, text = parts(read_sample("communication-update.md"))
    for s in ("council’s", "Déjà vu", "naïve café", "£5", "50 % – “quotes” — 🙂", "·"):
        assert s in html and s in text, s
    assert "> If you are a member, important news will now reach you by email, even if\n" in text
    assert "We have been bridging the gap for council" in text  # emphasis -> plain words


# ---------------------------------------------------------------- sanitising


@pytest.mark.parametrize(
    "markdown",
    [
        "<script>alert(1)</script>",
        "Hi <img src=x onerror=alert(1)> there",
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1)) and <javascript:alert(1)>",
        '<iframe src="https://evil.example/"></iframe>',
        "![pixel](https://tracker.example/p.gif)",
        "[x](data:image/png;base64,AAAA) [y](vbscript:msgbox) [z](file:///etc/passwd)",
        "[ftp](ftp://files.example/a) <ftp://files.example/b> [tel](tel:+441234)",
    ],
)
def test_dangerous_markdown_is_neutralised(markdown):
    """No script/img/iframe element, handler, src or link survives; the rest is inert text."""
    html, text = parts(markdown)
    facts = html_facts(html)
    assert facts.tags == ["p"] and facts.hrefs == []
    assert facts.attrs == []  # no onerror=, src=, href=, style= on anything
    lowered = html.lower()
    for bad in ("<script", "<img", "<iframe", "<a ", "tracker.example"):
        assert bad not in lowered, bad
    # The text says exactly what the HTML shows (escaped source), and adds no link target.
    assert text.split() == "".join(facts.visible).split()
    assert "tracker.example" not in text


def test_raw_html_is_shown_as_text_not_markup():
    """js-default escapes raw HTML: the HTML carries &lt;script&gt; as words, never a tag."""
    html, text = parts("Before <script>alert(1)</script> after <iframe src=x></iframe>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;iframe src=x&gt;" in html
    assert html_facts(html).tags == ["p"]
    assert text == "Before <script>alert(1)</script> after <iframe src=x></iframe>\n"


def test_sanitiser_strips_raw_dangerous_html():
    """The nh3 layer alone removes script (with content), handlers, iframes, images, js links."""
    dirty = (
        '<p onclick="x()">ok<script>alert(1)</script></p><img src=x onerror=alert(1)>'
        '<iframe src="https://evil.example/"></iframe><a href="javascript:alert(1)">j</a>'
        '<a href="https://ok.example/" onmouseover="x()" style="color:red">fine</a>'
        '<ol start="3" type="a"><li>c</li></ol><td align="right" style="x">t</td>'
    )
    clean = sanitise_html(dirty)
    assert_safe_html(clean)
    for bad in ("script", "alert", "onclick", "onerror", "onmouseover", "iframe", "evil",
                "img", "javascript", "style", "type="):
        assert bad not in clean, bad
    assert '<a href="https://ok.example/"' in clean and '<ol start="3">' in clean


def test_images_are_replaced_by_their_alt_text():
    """No <img> (no tracking pixels); the alt text stays as words in both parts."""
    html, text = parts("See ![the poster for *May*](https://example.org/poster.png) here.")
    assert "<img" not in html and "poster.png" not in html
    assert html == "<p>See the poster for May here.</p>\n"
    assert text == "See the poster for May here.\n"


# ---------------------------------------------------------------- structure


def test_ordered_list_respects_start_and_numbers_on():
    """An ordered list starting at 7 is numbered 7., 8., 9. in the text."""
    html, text = parts("7. seven\n8. eight\n9. nine\n")
    assert '<ol start="7">' in html
    assert text == "7. seven\n8. eight\n9. nine\n"
    _, text2 = parts("1. one\n1. two\n1. three\n")
    assert text2 == "1. one\n2. two\n3. three\n"


def test_nested_lists_are_indented():
    """Nested bullets and numbers are indented under their parent item's text."""
    _, text = parts("- fruit\n  - apple\n  - pear\n    1. ripe\n    2. green\n- veg\n")
    assert text == (
        "- fruit\n"
        "  - apple\n"
        "  - pear\n"
        "    1. ripe\n"
        "    2. green\n"
        "- veg\n"
    )


def test_loose_list_items_are_separated_by_blank_lines():
    """Items of a loose list (with paragraphs) get a blank line between them."""
    _, text = parts("- first\n\n- second\n  continued\n")
    assert text == "- first\n\n- second continued\n"


def test_list_item_wraps_with_hanging_indent():
    """A long list item wraps under its own text, not under the marker."""
    _, text = parts("1. " + "word " * 30)
    lines = text.splitlines()
    assert lines[0].startswith("1. word")
    assert all(line.startswith("   word") for line in lines[1:])
    assert all(len(line) <= 76 for line in lines)


def test_blockquote_lines_are_prefixed():
    """Every blockquote line starts with '> ', nested quotes with '> > '."""
    _, text = parts("> one two\n>\n> three\n> > inner\n\nafter\n")
    assert text == "> one two\n>\n> three\n>\n> > inner\n\nafter\n"


def test_long_blockquote_wraps_inside_prefix():
    """A long quoted paragraph wraps so each line, with '> ', fits the width."""
    _, text = parts("> " + "quoted " * 40)
    lines = text.splitlines()
    assert len(lines) > 2 and all(line.startswith("> quoted") for line in lines)
    assert all(len(line) <= 76 for line in lines)


def test_headings_underlined_for_levels_one_and_two_only():
    """h1 gets '=', h2 gets '-', h3 is just its text on its own line."""
    _, text = parts("# Main\n\n## Sub part\n\n### Small\n\nBody.\n")
    assert text == "Main\n====\n\nSub part\n--------\n\nSmall\n\nBody.\n"


def test_hr_code_and_strikethrough():
    """hr is a row of '-', code kept verbatim, strikethrough plain words."""
    _, text = parts("Use `a  b` now ~~not~~.\n\n---\n\n```\n  indented  line\nnext\n```\n")
    assert text == "Use a  b now not.\n\n" + "-" * 76 + "\n\n  indented  line\nnext\n"


def test_table_rows_use_pipes():
    """A table becomes one line per row with cells joined by ' | '."""
    html, text = parts("| Day | Time |\n|:----|-----:|\n| Mon | 10am |\n| Tue | [2pm](https://x.example/t) |\n")
    assert '<th align="left">Day</th>' in html and '<td align="right">10am</td>' in html
    assert "style=" not in html
    assert text == "Day | Time\nMon | 10am\nTue | 2pm (https://x.example/t)\n"


# ---------------------------------------------------------------- links


def test_bare_urls_and_angle_autolinks_become_links():
    """Bare http(s) URLs and <https://...> autolinks are links, trailing punctuation excluded."""
    html, text = parts(
        "See https://example.org/a_(b). Or (https://example.org/c), "
        "or <https://example.org/d?x=1&y=2>.\n"
    )
    assert html_facts(html).hrefs == [
        "https://example.org/a_(b)", "https://example.org/c", "https://example.org/d?x=1&y=2",
    ]
    assert text == (
        "See https://example.org/a_(b). Or (https://example.org/c), or\n"
        "https://example.org/d?x=1&y=2.\n"
    )


def test_urls_in_code_or_link_labels_are_not_linked_again():
    """No link inside a link label, and a URL in code stays code."""
    html, text = parts("[https://a.example](https://b.example) and `https://c.example`\n")
    assert html_facts(html).hrefs == ["https://b.example"]
    assert "<code>https://c.example</code>" in html
    assert text == "https://a.example (https://b.example) and https://c.example\n"


def test_mailto_links_show_the_address():
    """A mailto link labelled with its address shows the address once; others 'label (address)'."""
    html, text = parts(
        "Write to hello@forum.example, [Ann](mailto:ann@forum.example) or "
        "<mailto:bob@forum.example> or [carol@forum.example](mailto:carol@forum.example).\n"
    )
    assert html_facts(html).hrefs == [
        "mailto:hello@forum.example", "mailto:ann@forum.example",
        "mailto:bob@forum.example", "mailto:carol@forum.example",
    ]
    assert text == (
        "Write to hello@forum.example, Ann (ann@forum.example) or bob@forum.example\n"
        "or carol@forum.example.\n"
    )
    assert "mailto" not in text
    # A hand-written fragment whose label is the full mailto: URL shows it once.
    assert html_to_text('<p><a href="mailto:d@x.example">mailto:d@x.example</a></p>') == (
        "mailto:d@x.example\n"
    )


def test_long_url_stands_on_its_own_line_unbroken():
    """A URL longer than the width is never split; it sits alone on its line."""
    url = "https://example.org/" + "x" * 100 + "?a=1-2-3"
    _, text = parts(f"Please read the [long guide]({url}) before Monday, thank you.\n")
    assert f"\n({url})\n" in text
    assert text.startswith("Please read the long guide\n")


def test_relative_placeholder_href_passes_through():
    """A relative href (emails.py's per-recipient slot markers) is kept for later filling."""
    html, text = parts("[Confirm my membership](MAILERSLOT2X)\n")
    assert '<a href="MAILERSLOT2X"' in html
    assert text == "Confirm my membership (MAILERSLOT2X)\n"


# ---------------------------------------------------------------- html_to_text details


def test_entities_decoded_and_whitespace_collapsed():
    """HTML entities are decoded and runs of whitespace collapse to one space."""
    text = html_to_text("<p>  Fish &amp; chips\n\n\t &lt;3 &quot;x&quot; &#163;5  </p>\n\n\n<p>b</p>")
    assert text == 'Fish & chips <3 "x" £5\n\nb\n'


def test_hard_break_starts_a_new_line():
    """A <br> (Markdown hard break) starts a new line in the text."""
    _, text = parts("Forum Steering Group  \nc/o The Library\\\nMain Street\n")
    assert text == "Forum Steering Group\nc/o The Library\nMain Street\n"


def test_width_parameter_controls_wrapping():
    """html_to_text wraps at the given width."""
    text = html_to_text("<p>" + "abc " * 30 + "</p>", width=20)
    assert all(len(line) <= 20 for line in text.splitlines())
    assert len(text.splitlines()) == 6


def test_empty_input():
    """Empty Markdown gives an empty fragment and a text of one newline."""
    assert render_parts("") == ("", "\n")
    assert html_to_text("") == "\n"


def test_same_words_on_mixed_document():
    """A document using every supported construct keeps words and links in both parts."""
    markdown = (
        "# Open meeting\n\nCome on **Monday**, _13 May_ at the *Town Hall*.\n\n"
        "## Agenda\n\n3. Welcome\n4. Survey: https://survey.example/s?id=1\n"
        "   - paper copies\n   - [large print](https://survey.example/large)\n\n"
        "> Bring a friend.\n\n| Who | Where |\n|---|---|\n| Ann | ann@forum.example |\n\n"
        "---\n\nQuestions? [Email us](mailto:hello@forum.example). ~~No~~ parking.\n"
    )
    _html, text = parts(markdown)
    assert "3. Welcome\n4. Survey: https://survey.example/s?id=1\n   - paper copies\n" in text
    assert "   - large print (https://survey.example/large)\n" in text
    assert "Questions? Email us (hello@forum.example). No parking.\n" in text


# ---------------------------------------------------------------- long bare URLs (E7)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://example.org/a", "https://example.org/a"),  # short: as written
        ("https://www.gov.uk/government/publications/send-and-alternative-provision-improvement-plan",
         "www.gov.uk/government/publications/…"),
        ("https://www.somerset.gov.uk/children-families-and-education/local-offer?x=1",
         "www.somerset.gov.uk/children-families-…"),
        ("https://example.org/" + "x" * 80, "example.org/" + "x" * 27 + "…"),
        ("https://ex.org:8443/abc/defghijklmnopqrstuvwxyz0123456789/xyz", "ex.org:8443/abc/defghijklmnopqrstuvwxyz…"),
        ("https://a-very-very-long-host-name-that-goes-on-and-on.example.org/p/q",
         "a-very-very-long-host-name-that-goes-on-and-on.example.org/…"),
        ("https://user:secret@council.example/" + "d" * 60, "council.example/" + "d" * 23 + "…"),
        ("https://a-very-very-long-host-name-that-goes-on-and-on.example.org/",
         "a-very-very-long-host-name-that-goes-on-and-on.example.org"),
        ("https://ex.org:port/abcdefghijklmnopqrstuvwxyz0123456789",
         "https://ex.org:port/abcdefghijklmnopqrstuvwxyz0123456789"),  # unreadable: as written
    ],
    ids=["short", "cut-at-slash", "cut-at-dash", "no-separator", "port", "long-host", "user-info", "host-only",
         "bad-port"],
)
def test_shorten_url_keeps_the_host_and_the_start_of_the_path(url, shown):
    """shorten_url: short URLs unchanged; long ones are host + start of path + "…", within 40 characters
    unless the host alone is longer, the host never cut, no scheme or user-info shown."""
    assert shorten_url(url) == shown
    assert "secret" not in shorten_url(url)
    if shown != url:
        host = urlsplit(url).hostname or ""
        assert shown.startswith(host) and (len(shown) <= 40 or shown.startswith(host + "/…") or shown == host)


def test_long_bare_url_link_text_is_short_and_the_href_and_text_part_whole():
    """A long bare URL links to the whole URL with shortened text; the text part shows the whole URL once."""
    url = "https://www.gov.uk/government/publications/send-and-ap-improvement-plan/right-support-right-place?ref=1"
    html, text = render_parts(f"Read the plan: {url}.\n")  # not parts(): the HTML shows "…", the text the URL
    facts = html_facts(html)
    assert facts.hrefs == [url]
    assert "www.gov.uk/government/publications/…</a>." in html
    assert text == f"Read the plan:\n{url}.\n"
    assert text.count("gov.uk") == 1


def test_hand_written_link_text_is_never_shortened():
    """Only bare URLs are shortened: an author's own link text, or a URL written as a link label, stays."""
    url = "https://example.org/" + "y" * 60
    html, text = parts(f"[{url}]({url}) and [the long guide]({url})\n")
    assert html.count(f">{url}</a>") == 1 and ">the long guide</a>" in html
    assert text.count(url) == 2


# ---------------------------------------------------------------- slots filled per member (issue 17 s.4)


def test_a_slot_link_goes_on_its_own_line_under_its_label() -> None:
    """A link to a URL slot: its label on one line, the marker alone on the next, whatever precedes it."""
    _, text = render_parts(
        "You can always leave: [Unsubscribe from these emails](MAILERSLOT1X)", Slots(urls=frozenset({"MAILERSLOT1X"}))
    )
    assert text.splitlines() == ["You can always leave: Unsubscribe from these emails", "MAILERSLOT1X"]


def test_room_is_kept_for_a_value_slot() -> None:
    """A value marker is wrapped as if SLOT_WIDTH characters long, and no padding is left in the text."""
    words = "word " * 30
    _, text = render_parts(f"Dear MAILERSLOT0X, {words}", Slots(values=frozenset({"MAILERSLOT0X"})))
    first = text.split("\n")[0]
    assert first.startswith("Dear MAILERSLOT0X,") and "\ue002" not in text
    assert len(first) - len("MAILERSLOT0X") + SLOT_WIDTH <= 76


def test_fit_block_rewraps_only_what_is_too_long_keeping_quote_marks() -> None:
    """A filled paragraph within 78 characters is unchanged; a longer one is wrapped again with its prefix,
    and a URL is never broken."""
    assert fit_block("> short\n> lines") == "> short\n> lines"
    long = "> Dear " + "Montgomery-Fairweather " * 4 + "thank you\n> for everything https://example.org/" + "a" * 90
    fitted = fit_block(long).split("\n")
    assert all(line.startswith("> ") for line in fitted)
    assert all(len(line) <= 78 or line == "> https://example.org/" + "a" * 90 for line in fitted)


def test_block_end_stops_at_the_next_item_quote_or_blank_line() -> None:
    """A paragraph or list item runs over its indented continuation lines, not into the next item."""
    lines = ["- first item", "  goes on", "- second", "", "plain", "text", "> quote"]
    assert block_end(lines, 0) == 2
    assert block_end(lines, 4) == 6
