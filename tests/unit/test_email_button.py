"""E5: a transactional template's 'Button: <slot>' line turns the paragraph that is only a link to that slot into
a large button with the link written out below it, in the HTML only; the text part keeps its words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jinja2 import DictLoader, Environment, FileSystemLoader, select_autoescape

from mailer.mail.emails import MailSettings, render_template, with_button
from mailer.mail.transactional import SLOTS

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
SETTINGS = MailSettings(
    forum_name="Parent Carer Forum", from_name="Parent Carer Forum", from_address="noreply@forum.test",
    reply_to="hello@forum.test", contact_address="hello@forum.test", message_id_domain="forum.test",
    list_id="members.forum.test", base_url="https://forum.test",
)
CONFIRM_URL = "https://forum.test/confirm/" + "t0ken" * 30


def built_in() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def test_confirmation_link_is_a_button_with_the_link_below_and_the_text_part_unchanged() -> None:
    """The confirm email shows 'Confirm my membership' as a 44 px+ button in a presentation table, then the
    same link written out; each recipient's URL fills both; the text part shows the link once, on its own line."""
    template = render_template(built_in(), "confirm", SETTINGS, SLOTS, confirm_days=7, footer="")
    subject, html, text = template.fill({"name": "Pat", "confirm_url": CONFIRM_URL})
    assert subject == "Please confirm you want to join Parent Carer Forum"
    button = re.search(r'<table[^>]*class="button-table"[^>]*>.*?</table>', html, re.DOTALL)  # after css-inline
    assert button is not None and 'role="presentation"' in button.group(0).split(">")[0]
    link = re.search(r'<a [^>]*class="button"[^>]*>Confirm my membership</a>', button.group(0))
    assert link is not None and f'href="{CONFIRM_URL}"' in link.group(0)
    assert re.search(r"min-height: ?44px", link.group(0)) and re.search(r"color: ?#ffffff", link.group(0))
    below = html[button.end():]
    written = re.match(r'\s*<p class="button-link"[^>]*><a [^>]*>' + re.escape(CONFIRM_URL) + "</a></p>", below)
    assert written is not None and f'href="{CONFIRM_URL}"' in written.group(0)
    assert html.count(CONFIRM_URL) == 3  # two hrefs and the written-out link, nothing else
    assert f"Confirm my membership\n{CONFIRM_URL}\n" in text and text.count(CONFIRM_URL) == 1
    assert "Button:" not in text and "Button:" not in html


def test_a_button_line_naming_no_slot_or_no_link_paragraph_is_a_template_error() -> None:
    """'Button:' must name one of the template's slots, and the body must hold a paragraph that is only a link
    to it: anything else fails loudly when the template is first rendered, not silently in a member's inbox."""
    jinja = Environment(loader=DictLoader({
        "email/unknown.md": "Subject: Hello\nButton: nowhere\n\n[Go]({{ slot.confirm_url }})\n",
        "email/missing.md": "Subject: Hello\nButton: confirm_url\n\nPlease [go]({{ slot.confirm_url }}) now.\n",
        "email/layout.html": "{{ body }}",
    }))
    with pytest.raises(ValueError, match="is not one of"):
        render_template(jinja, "unknown", SETTINGS, SLOTS)
    with pytest.raises(ValueError, match="no paragraph holding only a link"):
        render_template(jinja, "missing", SETTINGS, SLOTS)
    with pytest.raises(ValueError):
        with_button("<p>No link here</p>", "MAILERSLOT1X")


def test_a_real_url_with_an_ampersand_is_matched_and_written_escaped() -> None:
    """with_button finds a link whose href the sanitiser escaped (&amp;) and writes it out escaped, never raw."""
    url = "https://forum.test/confirm?a=1&b=2"
    button = with_button(f'<p><a href="{url.replace("&", "&amp;")}" rel="noopener noreferrer">Go</a></p>', url)
    assert button.count('href="https://forum.test/confirm?a=1&amp;b=2"') == 2
    assert ">https://forum.test/confirm?a=1&amp;b=2</a>" in button and "a=1&b" not in button
