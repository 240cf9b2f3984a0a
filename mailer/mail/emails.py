"""Email content: both MIME parts from one Markdown source, in the accessible layout. Never opens SMTP.

Rendering is done once per kind of mail and then filled in per recipient (mailer.mail.prebuilt
turns it into bytes), so a send to thousands does not run Markdown, sanitising and CSS
inlining thousands of times, and a member's name is never read as Markdown."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from email import policy
from typing import Any

import css_inline
from jinja2 import Environment
from markupsafe import Markup

from mailer.mail.compose import Slots, block_end, fit_block, render_parts

# Build with 78-column rules so long body lines are quoted-printable; write out with a
# 998 limit so a long List-Unsubscribe URL stays one plain header line (STACK.md s.3).
BUILD_POLICY = policy.SMTP
WIRE_POLICY = policy.SMTP.clone(max_line_length=998)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&.-])")
_UNSAFE_HEADER_CHARS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
# Plain rules go into style="" (what most mail programs read); @media rules (narrow screens, dark mode)
# cannot be inlined and stay in the <style> block (E7).
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)


# Room kept in the text part for a value longer than a name is (E1, compose.Slots): a list of two or three
# groups fits, so most members' paragraphs need no wrapping again when filled.
SLOT_ROOMS = {"groups": 56}


@dataclass(frozen=True)
class MailSettings:
    """Who mail comes from and where its links point: Settings.mail_settings."""

    forum_name: str
    from_name: str
    from_address: str
    reply_to: str
    contact_address: str
    message_id_domain: str
    list_id: str
    base_url: str
    footer_line: str = ""  # e.g. a charity number, under the contact line of every email (V6)

    @property
    def footer_markdown(self) -> str:
        """The footer line as Markdown that shows exactly what the owner typed (no links, no formatting)."""
        return _MARKDOWN_SPECIAL.sub(r"\\\1", header_safe(self.footer_line))


@dataclass(frozen=True)
class MailTemplate:
    """A mail rendered once, with placeholders where each recipient's values go."""

    subject: str
    html: str
    text: str
    slots: dict[str, str]

    def fill(self, values: dict[str, str]) -> tuple[str, str, str]:
        """(subject, html, text) for one recipient; values are escaped for HTML here."""
        subject, html_body = self.subject, self.html
        for key, marker in self.slots.items():
            value = values.get(key, "")
            subject = subject.replace(marker, header_safe(value))
            html_body = html_body.replace(marker, html.escape(value, quote=True))
        lines, out, i = self.text.split("\n"), [], 0
        while i < len(lines):
            if not any(m in lines[i] for m in self.slots.values()):
                out.append(lines[i])
                i += 1
                continue
            end = block_end(lines, i)
            block = "\n".join(lines[i:end])
            for key, marker in self.slots.items():
                block = block.replace(marker, values.get(key, ""))
            out.append(fit_block(block))  # a value longer than the room kept for it (E1)
            i = end
        return subject, html_body, "\n".join(out)


def header_safe(value: str) -> str:
    """No CR, LF or control character from user input ever reaches a header (E3)."""
    return _UNSAFE_HEADER_CHARS.sub(" ", value or "").strip()


def render_template(
    jinja: Environment, name: str, settings: MailSettings, slot_names: list[str], **context: Any
) -> MailTemplate:
    """Render `email/<name>.md` once: its first line is 'Subject: ...', then an optional 'Button: <slot>'
    line (the paragraph that is only a link to that slot is shown as a button), the rest Markdown."""
    slots = {key: f"MAILERSLOT{i}X" for i, key in enumerate(slot_names)}
    source = jinja.get_template(f"email/{name}.md").render(settings=settings, slot=slots, **context)
    first, _, markdown = source.lstrip().partition("\n")
    if not first.lower().startswith("subject:"):
        raise ValueError(f"email/{name}.md must start with a 'Subject:' line")
    subject = first.split(":", 1)[1].strip()
    button = None
    second, _, rest = markdown.partition("\n")
    if second.lower().startswith("button:"):
        slot_name = second.split(":", 1)[1].strip()
        if slot_name not in slots:
            raise ValueError(f"email/{name}.md: 'Button: {slot_name}' is not one of {', '.join(slots)}")
        button, markdown = slots[slot_name], rest
    return compose_template(
        jinja, subject, markdown, settings, slots, footer=context.get("footer", ""), button=button
    )


def with_button(body_html: str, href: str) -> str:
    """The paragraph that is only a link to `href` becomes a large button (at least 44 px high, white on dark
    blue) with the link also written out below it, to copy when a mail program shows no button (E5, E7).
    Only words already in the text part are added (E1): the template says what the link below is for."""
    escaped = html.escape(href, quote=True)  # as the sanitiser wrote it in the href
    pattern = re.compile(r"<p><a href=\"" + re.escape(escaped) + r"\"[^>]*>([^<]+)</a></p>")
    match = pattern.search(body_html)
    if match is None:
        raise ValueError(f"no paragraph holding only a link to {href} to show as a button")
    label = match.group(1)
    link = f'href="{escaped}" rel="noopener noreferrer"'
    button = (
        '<table role="presentation" class="button-table" cellpadding="0" cellspacing="0" border="0"'
        ' style="margin: 8px 0 12px 0; border-collapse: separate;">'
        '<tr><td class="button-cell" bgcolor="#1d3557" style="border: 0; padding: 0; border-radius: 6px;'
        ' background-color: #1d3557; mso-padding-alt: 14px 28px;">'
        f'<a class="button" {link} style="display: inline-block; box-sizing: border-box; min-height: 44px;'
        " padding: 14px 28px; border-radius: 6px; background-color: #1d3557; color: #ffffff; font-size: 18px;"
        f' font-weight: bold; line-height: 24px; text-decoration: none;">{label}</a>'
        "</td></tr></table>"
        f'<p class="button-link"><a {link}>{escaped}</a></p>'
    )
    return body_html[: match.start()] + button + body_html[match.end():]


PREHEADER_MAX = 140
# After the preheader's sentence: combining grapheme joiners (invisible, and not format characters, which
# the checks on names and mail refuse) and no-break spaces, so an inbox preview shows nothing more (no
# "View in your browser" or footer text pulled in after it).
PREHEADER_PADDING = "&#847;&nbsp;" * 90
_PARAGRAPH = re.compile(r"<p\b[^>]*>(.*?)</p>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_BODY_TAG = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


def preheader_text(body_html: str, limit: int = PREHEADER_MAX) -> str:
    """The first sentence of a body's paragraphs as plain text (headings left out), for the inbox preview
    (E8, issue 17.3); a greeting without a full stop ("Dear Pat,") runs on into the next paragraph.
    Cut at a word with an ellipsis when longer than `limit`; empty when the body has no paragraph."""
    words = " ".join(html.unescape(_TAG.sub("", p)) for p in _PARAGRAPH.findall(body_html))
    words = " ".join(words.split())
    end = _SENTENCE_END.search(words)
    sentence = words[: end.end()] if end else words
    if len(sentence) > limit:
        sentence = sentence[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "\u2026"
    return sentence


def with_preheader(document: str, text: str) -> str:
    """The preheader as the first thing in the layout's <body> (whatever layout the operator has): hidden
    from view (display: none and zero size, mso-hide for Outlook) and from screen readers (aria-hidden),
    which read the same sentence in the body, and padded so previews stop after it."""
    if not text:
        return document
    block = (
        '<div class="preheader" aria-hidden="true" style="display: none; font-size: 1px; line-height: 1px;'
        " max-height: 0; max-width: 0; opacity: 0; overflow: hidden; mso-hide: all; color: transparent;\">"
        # The padding on a line of its own: a sentence with a member's name is filled per member, the padding not.
        f"{html.escape(text, quote=False)}\n{PREHEADER_PADDING}</div>"
    )
    match = _BODY_TAG.search(document)
    if match is None:
        return block + document
    return document[: match.end()] + "\n" + block + document[match.end():]


def compose_template(
    jinja: Environment,
    subject: str,
    markdown: str,
    settings: MailSettings,
    slots: dict[str, str],
    footer: str = "",
    button: str | None = None,
    *,
    lead: tuple[str, str] | None = None,
    preheader: bool = False,
) -> MailTemplate:
    """Markdown -> sanitised HTML in the accessible layout, plus the same words as text (E1, E5).
    `button`: the href whose link paragraph is shown as a button (see with_button); the text is unchanged.
    `lead`: (label, URL) of a link shown above the body ("View in your browser", issue 17.4); in the text
    part the URL is on a line of its own under the label, as the members' own links are (E1).
    `preheader`: the body's first sentence hidden at the top of the HTML for the inbox preview (issue 17.3);
    the text part is unchanged (its first lines are the preview there)."""
    # Markers of links (names ending in _url) go on a line of their own in the text part, and room is kept
    # for the other values, so no filled line is over 78 characters but a URL alone (E1).
    laid_out = Slots(
        urls=frozenset(m for k, m in slots.items() if k.endswith("_url")),
        values=frozenset(m for k, m in slots.items() if not k.endswith("_url")),
        rooms=tuple((m, SLOT_ROOMS[k]) for k, m in slots.items() if k in SLOT_ROOMS),
    )
    body_html, body_text = render_parts(markdown, laid_out)
    if button is not None:
        body_html = with_button(body_html, button)
    hidden_preview = preheader_text(body_html) if preheader else ""
    if lead is not None:
        label, href = lead
        body_html = (
            f'<p class="web-view"><a href="{html.escape(href, quote=True)}" rel="noopener noreferrer">'
            f"{html.escape(label)}</a></p>\n" + body_html
        )
        body_text = f"{label}\n{href}\n\n" + body_text
    footer_html, footer_text = render_parts(footer, laid_out) if footer else ("", "")
    document = jinja.get_template("email/layout.html").render(
        subject=subject, body=Markup(body_html), footer=Markup(footer_html), settings=settings
    )
    document = with_preheader(document, hidden_preview)
    text = settings.forum_name + "\n\n" + body_text.rstrip("\n") + "\n"  # the masthead, as in the HTML
    if footer_text:
        text += "\n-- \n" + footer_text
    return MailTemplate(subject=subject, html=_INLINER.inline(document), text=text, slots=slots)
