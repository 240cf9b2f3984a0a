"""Issue 9, the email layout: an operator's layout in instance/ is used once it passes its checks
(language, title, body, footer, presentation tables, no script); a broken one is refused with a
warning and mail keeps the built-in layout; `flask check-layout` says which."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.factories import add_member, admin_post, compose, logged_in_admin
from support.mail import parts

from mailer.mail.layout import check_layout
from mailer.worker.runner import run_tick_for_app

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
    """The operator's layout, once it passes the checks, frames the email."""
    (layout_dir / "email" / "layout.html").write_text(CUSTOM, encoding="utf-8")
    app = make_app(MAILER_EMAIL_TEMPLATE_DIR=str(layout_dir))
    _, html = send_one(app, clock, smtp)
    assert "news for families" in html and "Dear Reader." in html


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
