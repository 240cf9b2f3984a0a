"""Issue 9, the email layout: an operator's layout in instance/ is used once it passes its checks
(language, title, body, footer, presentation tables, no script); a broken one is refused with a
warning and mail keeps the built-in layout; `flask check-layout` says which."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mailer.mail.layout import check_layout
from mailer.worker.runner import run_tick_for_app
from support.factories import add_member, admin_post, compose, logged_in_admin
from support.mail import parts

BUILT_IN = (Path(__file__).resolve().parents[2] / "templates" / "email" / "layout.html").read_text(encoding="utf-8")
CUSTOM = BUILT_IN.replace("{{ settings.forum_name }}</div>", "{{ settings.forum_name }}: news for families</div>")


@pytest.fixture
def layout_dir(tmp_path: Path) -> Path:
    (tmp_path / "email_templates" / "email").mkdir(parents=True)
    return tmp_path / "email_templates"


def send_one(app, clock, smtp):  # type: ignore[no-untyped-def]
    with app.app_context():
        add_member("reader@example.org", clock=clock)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Layout", body="# Hello\n\nDear {{ name }}.")
    page = f"/admin/announcements/{announcement_id}"
    admin_post(admin, page, f"{page}/send-now")
    run_tick_for_app(app)
    return parts(smtp.wait_for(1)[0].message)


def test_a_good_override_is_used_for_announcements(make_app, clock, smtp, layout_dir):
    """The operator's layout, once it passes the checks, frames the email, its @media rules kept."""
    (layout_dir / "email" / "layout.html").write_text(CUSTOM, encoding="utf-8")
    app = make_app(MAILER_EMAIL_TEMPLATE_DIR=str(layout_dir))
    _, html = send_one(app, clock, smtp)
    assert "news for families" in html and "Dear Reader." in html
    assert "@media (prefers-color-scheme: dark)" in html  # an override's @media rules are kept too (E7)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s.replace(' lang="en-GB"', ""), "no <html lang"),
        (lambda s: s.replace("<title>{{ subject }}</title>", ""), "no <title>"),
        (lambda s: s.replace("{{ body }}", ""), "does not show {{ body }}"),
        (lambda s: s.replace("{{ footer }}", ""), "does not show {{ footer }}"),
        (lambda s: s.replace("{{ body }}", "{{ body }<script>x()</script>"), "line "),
        (lambda s: s.replace("</body>", "<script>track()</script></body>"), "<script>"),
        (lambda s: s.replace('role="presentation" class="wrapper"', 'class="wrapper"'), 'role="presentation"'),
    ],
    ids=["no-lang", "no-title", "no-body", "no-footer", "syntax-error", "script", "table-role"],
)
def test_a_broken_override_is_refused_and_the_built_in_layout_is_used(make_app, clock, smtp, layout_dir, caplog,
                                                                      change, problem):
    """A layout failing a check is not used: a warning names the problem and the email keeps the built-in layout."""
    path = layout_dir / "email" / "layout.html"
    path.write_text(change(CUSTOM), encoding="utf-8")
    result = check_layout(path)
    assert not result.usable and any(problem in p for p in result.problems), result.problems
    app = make_app(MAILER_EMAIL_TEMPLATE_DIR=str(layout_dir))
    _, html = send_one(app, clock, smtp)
    assert "news for families" not in html and '<html lang="en-GB">' in html and "Dear Reader." in html
    assert any("email layout override not used" in r.getMessage() for r in caplog.records)


def test_check_layout_command_reports_each_case(make_app, layout_dir):
    """`flask check-layout`: no override, a good one (exit 0), a broken one (exit 1, with the reason)."""
    app = make_app(MAILER_EMAIL_TEMPLATE_DIR=str(layout_dir))
    runner = app.test_cli_runner()
    missing = runner.invoke(args=["check-layout"])
    assert missing.exit_code == 0 and "built-in layout" in missing.output
    path = layout_dir / "email" / "layout.html"
    path.write_text(CUSTOM, encoding="utf-8")
    good = runner.invoke(args=["check-layout"])
    assert good.exit_code == 0 and "passed the checks" in good.output
    path.write_text(CUSTOM.replace("{{ footer }}", ""), encoding="utf-8")
    bad = runner.invoke(args=["check-layout"])
    assert bad.exit_code == 1 and "is NOT used" in bad.output and "{{ footer }}" in bad.output


def test_the_built_in_layout_passes_its_own_checks(tmp_path):
    """The shipped layout is the reference: it must pass the checks an override must pass."""
    path = tmp_path / "layout.html"
    path.write_text(BUILT_IN, encoding="utf-8")
    assert check_layout(path).usable


class _SentHtml(HTMLParser):
    """What a mail program gets to read: the kept <style> blocks, comments, and each element's class and style."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.styles: list[str] = []
        self.comments: list[str] = []
        self.elements: list[tuple[str, dict[str, str]]] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def test_media_rules_and_the_outlook_fallback_survive_in_the_sent_html(app, clock, smtp):
    """E7, as it arrived at the SMTP server: the dark-mode and narrow-screen @media rules are kept in a <style>
    block (everything else inlined), the classes they target are still there, long words wrap, and Outlook
    desktop's 640 px ghost table is in its conditional comments."""
    _, html = send_one(app, clock, smtp)
    sent = _SentHtml()
    sent.feed(html)
    css = " ".join(" ".join(sent.styles).split())
    blocks = re.findall(r"@media ([^{]+)\{", css)
    assert [b.strip() for b in blocks] == ["screen and (max-width: 480px)", "(prefers-color-scheme: dark)"]
    assert css.startswith("@media")  # plain rules were inlined, not left behind
    dark = css[css.index("(prefers-color-scheme: dark)"):]
    assert re.search(r"\.content[^{]*\{ background-color: #1e1e1e !important; color: #eeeeee !important;", dark)
    assert "a { color: #8ab4f8 !important; }" in dark
    assert ("meta", {"name": "color-scheme", "content": "light dark"}) in sent.elements
    content = [attrs for tag, attrs in sent.elements if attrs.get("class") == "content"]
    assert len(content) == 1 and "overflow-wrap: anywhere" in content[0]["style"]
    assert any(attrs.get("role") == "main" for _, attrs in sent.elements)
    opening = [c for c in sent.comments if c.startswith("[if mso]><table")]
    assert len(opening) == 1 and 'width="640"' in opening[0] and 'role="presentation"' in opening[0]
    assert "[if mso]></td></tr></table><![endif]" in sent.comments
