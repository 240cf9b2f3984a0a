"""Compose announcement bodies: Markdown -> sanitised HTML fragment + plain text.

Pure module (no Flask). The two parts of an email are built from one Markdown
source so that the text/plain and text/html alternatives carry the same words
and the same links:

* :func:`render_markdown` parses Markdown with markdown-it-py's ``js-default``
  preset (raw HTML is escaped, tables and strikethrough are on), turns bare
  ``http(s)://`` URLs and e-mail addresses into links, replaces images by their
  alt text, and sanitises the result with nh3 using an explicit allow-list.
* :func:`html_to_text` turns such a fragment into wrapped plain text with the
  stdlib :mod:`html.parser`.
* :func:`render_parts` does both.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

__all__ = [
    "Slots", "block_end", "fit_block", "html_to_text", "render_markdown", "render_parts", "sanitise_html",
    "shorten_url",
]

# --------------------------------------------------------------------------
# Markdown -> HTML
# --------------------------------------------------------------------------

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "h1", "h2", "h3", "h4", "h5", "h6",
        "strong", "em", "b", "i", "s", "del",
        "ul", "ol", "li", "a", "blockquote", "code", "pre", "hr",
        "table", "thead", "tbody", "tr", "th", "td",
    }
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
# Restricted-value attributes (must not also be listed in ALLOWED_ATTRIBUTES).
ALLOWED_ATTRIBUTE_VALUES = {
    "th": {"align": {"left", "center", "right"}},
    "td": {"align": {"left", "center", "right"}},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer"

_md: MarkdownIt | None = None
_cleaner: nh3.Cleaner | None = None


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    if tag == "ol" and attr == "start":
        value = value.strip()
        return value if value.isdigit() and len(value) <= 9 else None
    return value


def _get_cleaner() -> nh3.Cleaner:
    global _cleaner
    if _cleaner is None:
        _cleaner = nh3.Cleaner(
            tags=set(ALLOWED_TAGS),
            clean_content_tags={"script", "style"},
            attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
            tag_attribute_values={
                t: {a: set(vals) for a, vals in m.items()}
                for t, m in ALLOWED_ATTRIBUTE_VALUES.items()
            },
            attribute_filter=_attribute_filter,
            link_rel=LINK_REL,
            url_schemes=set(URL_SCHEMES),
            # Relative hrefs pass through (nh3's default): mailer.mail.emails renders
            # links to per-recipient placeholders such as "MAILERSLOT0X" and
            # swaps in the absolute URL after rendering.
            strip_comments=True,
        )
    return _cleaner


def sanitise_html(html: str) -> str:
    """Clean an HTML fragment with the module's email allow-list."""
    return _get_cleaner().clean(html)


# Bare URLs and e-mail addresses (js-default has linkify off and we do not
# want linkify-it-py). URLs stop at whitespace or '<'; trailing punctuation
# is trimmed afterwards, GFM-style.
_AUTOLINK_RE = re.compile(
    r"(?P<url>(?<![\w@.+/:=-])(?<!=\")(?<!=')https?://[^\s<>/?#\"'`]+[^\s<>]*)"
    r"|(?P<email>(?<![\w.%+@-])[A-Za-z0-9][A-Za-z0-9._%+-]*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,63}\b"
    r"(?![@-]))",
    re.IGNORECASE,
)
_TRAILING_PUNCT = ".,:;!?'\"*_~’”»›"


def _trim_url(url: str) -> str:
    while url:
        last = url[-1]
        if (
            last in _TRAILING_PUNCT
            or (last == ")" and url.count(")") > url.count("("))
            or (last == "]" and url.count("]") > url.count("["))
        ):
            url = url[:-1]
        else:
            break
    return url


# A bare URL longer than this shows as host + start of path + "…" (E7: council letters are full of
# long links that would make an email wider than a phone); the href, and the text part, keep it whole.
SHORT_URL_LENGTH = 40
ELLIPSIS = "\u2026"
_URL_BREAKS = "/?&=#-_.+;"


def _host_and_rest(url: str) -> tuple[str, str] | None:
    """(host[:port], path?query#fragment) of an absolute URL, or None when it has no readable host."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:  # e.g. a port that is not a number
        return None
    if not host or not parts.netloc:
        return None
    if port is not None:
        host += f":{port}"
    return host, url[url.find(parts.netloc) + len(parts.netloc):]


def shorten_url(url: str, limit: int = SHORT_URL_LENGTH) -> str:
    """The link text shown for a bare URL: the URL itself when short, else host + start of path + "…".

    The host is never cut (it says where the link goes); the scheme and any user-info are left out.
    The path is cut after a separator (/ ? & = - _ . and so on) when one is near the limit."""
    split = _host_and_rest(url) if len(url) > limit else None
    if split is None:
        return url
    host, rest = split
    if rest in ("", "/"):
        return host
    room = limit - len(host) - len(ELLIPSIS)
    if len(rest) <= room + len(ELLIPSIS):
        return host + rest
    if room < 2:
        return host + "/" + ELLIPSIS
    cut = rest[:room]
    best = max(cut.rfind(ch) for ch in _URL_BREAKS)
    if best >= room // 2:
        cut = cut[: best + 1]
    return host + cut + ELLIPSIS


def _shortened_label_of(label: str, href: str) -> bool:
    """Whether a link's text is a shortened form of its href (host + start of path + "…"): the text
    part then shows the whole href alone."""
    if len(label) >= len(href):
        return False
    for form in (href, _get_md().normalizeLinkText(href)):
        if shorten_url(form) == label:
            return True
        split = _host_and_rest(form)
        if split and label.endswith(ELLIPSIS) and label.startswith(split[0]) and "".join(split).startswith(label[:-1]):
            return True
    return False


def _split_autolinks(md: MarkdownIt, text: str, level: int) -> list[Token] | None:
    """Split one text token's content into text/link tokens, or None if no link."""
    out: list[Token] = []
    pos = 0
    found = False
    for m in _AUTOLINK_RE.finditer(text):
        if m.start() < pos:
            continue
        if m.group("url"):
            label = _trim_url(m.group("url"))
            if "://" not in label or len(label) <= len(label.split("://", 1)[0]) + 3:
                continue
            href = md.normalizeLink(label)
        else:
            label = m.group("email")
            href = md.normalizeLink("mailto:" + label)
        if not md.validateLink(href):
            continue
        start, end = m.start(), m.start() + len(label)
        if start > pos:
            t = Token("text", "", 0, content=text[pos:start], level=level)
            out.append(t)
        link_open = Token("link_open", "a", 1, markup="linkify", info="auto", level=level)
        link_open.attrs = {"href": href}
        out.append(link_open)
        shown = shorten_url(label) if m.group("url") else label
        out.append(Token("text", "", 0, content=shown, level=level + 1))
        out.append(Token("link_close", "a", -1, markup="linkify", info="auto", level=level))
        pos = end
        found = True
    if not found:
        return None
    if pos < len(text):
        out.append(Token("text", "", 0, content=text[pos:], level=level))
    return out


def _image_alt(token: Token) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "text_special", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(_image_alt(child))
    return "".join(parts) if token.children else token.content


def _email_rules(state: StateCore) -> None:
    """Core rule: bare links -> links, images -> alt text, table align attrs."""
    md = state.md
    for block in state.tokens:
        if block.type in ("th_open", "td_open") and block.attrs:
            style = str(block.attrs.pop("style", ""))
            m = re.fullmatch(r"\s*text-align\s*:\s*(left|center|right)\s*;?\s*", style)
            if m:
                block.attrs["align"] = m.group(1)
            continue
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        link_depth = 0
        mailto_autolink = False
        for tok in block.children:
            if tok.type == "link_open":
                link_depth += 1
                href = str(tok.attrs.get("href", ""))
                mailto_autolink = tok.markup == "autolink" and href.lower().startswith("mailto:")
            elif mailto_autolink and tok.type == "text":
                # <mailto:a@b> shows "a@b", like <a@b> does.
                if tok.content.lower().startswith("mailto:"):
                    tok.content = tok.content[len("mailto:"):]
                mailto_autolink = False
            elif tok.type == "link_close":
                link_depth -= 1
                mailto_autolink = False
            elif tok.type == "image":
                alt = _image_alt(tok)
                if alt:
                    children.append(Token("text", "", 0, content=alt, level=tok.level))
                continue
            elif tok.type == "text" and link_depth == 0:
                pieces = _split_autolinks(md, tok.content, tok.level)
                if pieces is not None:
                    children.extend(pieces)
                    continue
            children.append(tok)
        block.children = children


_SCHEME_RE = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.\-]*):")


def _validate_link(url: str) -> bool:
    """Only http, https, mailto and relative links become links (else: literal text).

    Stricter than markdown-it's default (which allows data:image/...), so that a
    link nh3 would strip is shown as the author wrote it instead of as an
    href-less <a>. nh3 still enforces the same schemes afterwards.
    """
    m = _SCHEME_RE.match(url)
    return m is None or m.group(1).lower() in URL_SCHEMES


def _get_md() -> MarkdownIt:
    global _md
    if _md is None:
        md = MarkdownIt("js-default")
        # markdown-it-py documents replacing this method to change which links are allowed.
        md.validateLink = _validate_link  # type: ignore[method-assign]
        md.core.ruler.push("email_links", _email_rules)
        _md = md
    return _md


def render_markdown(markdown_text: str) -> str:
    """Markdown -> sanitised HTML fragment."""
    return sanitise_html(_get_md().render(markdown_text or ""))


# --------------------------------------------------------------------------
# HTML -> plain text
# --------------------------------------------------------------------------

_VOID = frozenset({"br", "hr", "img", "wbr", "input", "meta", "link", "area", "base",
                   "col", "embed", "source", "track", "param"})
_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript"})
_BLOCK = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre",
     "hr", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "div",
     "section", "article", "header", "footer", "main", "nav", "aside", "figure",
     "figcaption", "dl", "dt", "dd", "address", "body", "html"}
)
_HTML_WS = re.compile(r"[ \t\n\r\f]+")
_BR = "\ue000"        # hard line break marker inside inline text
_NBSP_CODE = "\ue001"  # a space inside inline code: never collapsed or wrapped
_PAD = "\ue002"        # room kept after a slot marker for the value put in later (removed after wrapping)
# Room a per-recipient value is given when wrapping (a name; see Slots): a marker is 12 characters, the
# value is longer, so lines with one are wrapped as if it were this long (E1). A longer value makes its
# paragraph wrap again per member (fit_block), a cost kept for the few.
SLOT_WIDTH = 32


@dataclass(frozen=True)
class Slots:
    """Markers filled per recipient after the text is wrapped (R3, E1): `urls` are links, written on a line
    of their own below their label (a URL is never wrapped); `values` are words such as a name, wrapped as
    if `SLOT_WIDTH` characters long (or the room `rooms` gives that marker) so the filled line stays within
    the width."""

    urls: frozenset[str] = frozenset()
    values: frozenset[str] = frozenset()
    rooms: tuple[tuple[str, int], ...] = ()


_NO_SLOTS = Slots()


class _Element:
    __slots__ = ("attrs", "children", "tag")

    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.children: list[_Element | str] = []


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Element("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = _Element(tag, {k: (v or "") for k, v in attrs})
        self.stack[-1].children.append(el)
        if tag not in _VOID:
            self.stack.append(el)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(_Element(tag, {k: (v or "") for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if data:
            self.stack[-1].children.append(data)


def _parse(html_fragment: str) -> _Element:
    builder = _TreeBuilder()
    builder.feed(html_fragment)
    builder.close()
    return builder.root


def _raw_text(node: _Element | str) -> str:
    if isinstance(node, str):
        return node
    if node.tag in _SKIP:
        return ""
    if node.tag == "br":
        return "\n"
    return "".join(_raw_text(c) for c in node.children)


def _inline(node: _Element | str, out: list[str]) -> None:
    """Append the inline rendering of node to out (whitespace not yet collapsed)."""
    if isinstance(node, str):
        out.append(node)
        return
    tag = node.tag
    if tag in _SKIP:
        return
    if tag == "br":
        out.append(_BR)
    elif tag == "code":
        code = _raw_text(node)
        out.append(_HTML_WS.sub(lambda m: _NBSP_CODE * len(m.group()), code))
    elif tag == "a":
        label_parts: list[str] = []
        for child in node.children:
            _inline(child, label_parts)
        label = "".join(label_parts)
        out.append(label)
        href = node.attrs.get("href", "").strip()
        if href:
            shown = _HTML_WS.sub("%20", href)
            if shown.lower().startswith("mailto:"):
                shown = shown[len("mailto:"):]
            label_cmp = _HTML_WS.sub(" ", label.replace(_BR, " ")).replace(_NBSP_CODE, " ").strip()
            if label_cmp in (href, shown):
                pass  # the label is the URL or the address: show it once
            elif _shortened_label_of(label_cmp, href):
                out[-1] = shown  # a bare URL's shortened text: the text part keeps the whole URL
            elif label_cmp.rstrip("/") == shown.rstrip("/"):
                out[-1] = shown  # e.g. "https://x.org" for "https://x.org/"
            else:
                out.append(" (" + shown + ")")
    elif tag == "img":
        alt = node.attrs.get("alt", "")
        if alt:
            out.append(alt)
    else:
        for child in node.children:
            _inline(child, out)


def _inline_text(nodes: list[_Element | str]) -> list[str]:
    """Render inline nodes to segments (split at <br>), whitespace collapsed."""
    parts: list[str] = []
    for n in nodes:
        _inline(n, parts)
    text = _HTML_WS.sub(" ", "".join(parts))
    return [seg.strip(" ") for seg in text.split(_BR)]


def _wrap(segments: list[str], width: int) -> list[str]:
    lines: list[str] = []
    width = max(width, 20)
    for seg in segments:
        if not seg:
            continue
        wrapped = textwrap.wrap(
            seg,
            width=width,
            break_long_words=False,
            break_on_hyphens=False,
            expand_tabs=False,
        )
        lines.extend(line.replace(_NBSP_CODE, " ") for line in wrapped)
    return lines


def _join(blocks: list[list[str]], blank: bool) -> list[str]:
    lines: list[str] = []
    for b in blocks:
        if not b:
            continue
        if lines and blank:
            lines.append("")
        lines.extend(b)
    return lines


def _has_child(node: _Element, tag: str) -> bool:
    return any(isinstance(c, _Element) and c.tag == tag for c in node.children)


def _blocks(node: _Element, width: int) -> list[list[str]]:
    """Render a container's children as a list of blocks (each a list of lines)."""
    blocks: list[list[str]] = []
    pending: list[_Element | str] = []

    def flush() -> None:
        if pending:
            lines = _wrap(_inline_text(pending), width)
            if lines:
                blocks.append(lines)
            pending.clear()

    for child in node.children:
        if isinstance(child, _Element) and child.tag in _BLOCK:
            flush()
            block = _block(child, width)
            if block:
                blocks.append(block)
        else:
            pending.append(child)
    flush()
    return blocks


def _block(el: _Element, width: int) -> list[str]:
    tag = el.tag
    if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
        segs = [" ".join(s for s in _inline_text(el.children) if s)]
        lines = _wrap(segs, width)
        if lines and tag in ("h1", "h2"):
            lines.append(("=" if tag == "h1" else "-") * max(len(line) for line in lines))
        return lines
    if tag == "p":
        return _wrap(_inline_text(el.children), width)
    if tag == "hr":
        return ["-" * max(min(width, 76), 3)]
    if tag == "pre":
        text = _raw_text(el)
        if text.startswith("\n"):
            text = text[1:]
        return [line.rstrip() for line in text.rstrip("\n").split("\n")] if text.strip() else []
    if tag in ("ul", "ol"):
        return _list(el, width)
    if tag == "blockquote":
        inner = _join(_blocks(el, width - 2), blank=True)
        return [("> " + line) if line else ">" for line in inner]
    if tag == "table":
        return _table(el)
    if tag == "li":  # stray li outside a list
        return _list(_Element("ul", {}), width, items=[el])
    return _join(_blocks(el, width), blank=True)


def _list(el: _Element, width: int, items: list[_Element] | None = None) -> list[str]:
    if items is None:
        items = [c for c in el.children if isinstance(c, _Element) and c.tag == "li"]
    ordered = el.tag == "ol"
    try:
        number = int(el.attrs.get("start", "1").strip() or "1")
    except ValueError:
        number = 1
    loose = any(_has_child(li, "p") for li in items)
    rendered: list[list[str]] = []
    for li in items:
        marker = f"{number}. " if ordered else "- "
        number += 1
        indent = " " * len(marker)
        inner = _join(_blocks(li, width - len(marker)), blank=_has_child(li, "p"))
        if not inner:
            rendered.append([marker.rstrip()])
            continue
        lines = [marker + inner[0]]
        lines.extend((indent + line) if line else "" for line in inner[1:])
        rendered.append(lines)
    return _join(rendered, blank=loose)


def _table(el: _Element) -> list[str]:
    rows: list[list[str]] = []

    def walk(node: _Element) -> None:
        for c in node.children:
            if not isinstance(c, _Element):
                continue
            if c.tag == "tr":
                cells = [
                    " ".join(s for s in _inline_text(cell.children) if s).replace(_NBSP_CODE, " ")
                    for cell in c.children
                    if isinstance(cell, _Element) and cell.tag in ("th", "td")
                ]
                if cells:
                    rows.append(cells)
            elif c.tag in ("thead", "tbody", "tfoot", "caption"):
                if c.tag == "caption":
                    cap = " ".join(s for s in _inline_text(c.children) if s)
                    if cap:
                        rows.append([cap])
                else:
                    walk(c)

    walk(el)
    return [" | ".join(cells).rstrip() for cells in rows]


def _finish(lines: list[str]) -> str:
    out: list[str] = []
    for line in lines:
        line = line.rstrip()
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def _make_room(html_fragment: str, slots: Slots) -> str:
    """A link to a URL slot becomes its label, a line break and the marker on a line of its own; a value
    slot's marker gets padding that holds the place of its value while wrapping (removed afterwards)."""
    for marker in slots.urls:
        link = re.compile(r"<a href=\"" + re.escape(marker) + r"\"[^>]*>(.*?)</a>", re.DOTALL)
        html_fragment = link.sub(lambda m: m.group(1) + "<br>" + marker + "<br>", html_fragment)  # noqa: B023
    rooms = dict(slots.rooms)
    for marker in slots.values:
        room = rooms.get(marker, SLOT_WIDTH)
        html_fragment = html_fragment.replace(marker, marker + _PAD * max(room - len(marker), 0))
    return html_fragment


def html_to_text(html_fragment: str, width: int = 76, slots: Slots = _NO_SLOTS) -> str:
    """Sanitised HTML fragment (as produced by render_markdown) -> readable plain text.

    `slots`: markers filled per recipient after this runs; the lines are laid out so that, once filled,
    none is longer than `width` except a line holding only a URL (E1, see Slots)."""
    root = _parse(_make_room(html_fragment or "", slots))
    lines = _join(_blocks(root, width), blank=True)
    return _finish(lines).replace(_PAD, "")


TEXT_WIDTH = 78
_LINE_PREFIX = re.compile(r"((?:> )*)((?:- |\d+\. | +)?)")
_BLOCK_START = re.compile(r"(?:- |\d+\. |> | |[=-]+$)")


def _indent_of(first: str) -> str:
    quote, lead = _LINE_PREFIX.match(first).groups()  # type: ignore[union-attr]  # the pattern always matches
    return quote + " " * len(lead)


def block_end(lines: list[str], start: int) -> int:
    """The index after the last line of the wrapped paragraph or list item that `lines[start]` begins or is
    part of: the following lines with its indent that do not start something else (an item, a quote)."""
    indent = _indent_of(lines[start])
    end = start + 1
    while end < len(lines):
        line = lines[end]
        rest = line[len(indent):]
        if not line.startswith(indent) or not rest.strip() or _BLOCK_START.match(rest):
            break
        end += 1
    return end


def fit_block(text: str, width: int = TEXT_WIDTH) -> str:
    """Filled lines of one paragraph (see block_end) that came out longer than `width` (a value longer than
    the room SLOT_WIDTH kept for it), wrapped again with their quote marks and list indent; URLs are never
    broken. Lines within the width (nearly all) are returned as they are: a split and a len() per line."""
    lines = text.split("\n")
    if all(len(line) <= width for line in lines):
        return text
    match = _LINE_PREFIX.match(lines[0])
    prefix = match.group(0) if match else ""
    indent = _indent_of(lines[0])
    # Greedy, on spaces only (what textwrap does with these settings, several times faster: this runs per member).
    words = " ".join([lines[0][len(prefix):], *(line[len(indent):] for line in lines[1:])]).split(" ")
    out: list[str] = []
    current, started = prefix, False
    for word in words:
        if not word:
            continue
        if not started:
            current, started = current + word, True
        elif len(current) + 1 + len(word) > width:
            out.append(current)
            current = indent + word
        else:
            current += " " + word
    out.append(current)
    return "\n".join(out)


def render_parts(markdown_text: str, slots: Slots = _NO_SLOTS) -> tuple[str, str]:
    """(html_fragment, text) from one Markdown source; `slots` as for html_to_text."""
    html = render_markdown(markdown_text)
    return html, html_to_text(html, slots=slots)
