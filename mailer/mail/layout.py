"""The email layout, overridable by the operator (issue 9): `email/layout.html` is looked up in
`instance/email_templates/` first (MAILER_EMAIL_TEMPLATE_DIR), and the built-in one is the fallback.

An override is checked before it is used: it is rendered with a sample announcement and must
give an `<html lang>`, a `<title>` with the subject, the body and the footer, layout tables
marked role="presentation" and no scripts (E5, E6). One that fails is not used: a warning is
logged and mail keeps the built-in layout, so a typo in instance/ never breaks a send."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, ChoiceLoader, Environment, TemplateNotFound, TemplateSyntaxError
from markupsafe import Markup

LAYOUT = "email/layout.html"
log = logging.getLogger(__name__)

_SAMPLE_SUBJECT = "Sample announcement: checking the layout"
_BODY_MARK = "MAILERLAYOUTCHECKBODY"
_FOOTER_MARK = "MAILERLAYOUTCHECKFOOTER"


@dataclass(frozen=True)
class LayoutCheck:
    path: Path
    exists: bool
    problems: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.exists and not self.problems

    def describe(self) -> str:
        if not self.exists:
            return f"No layout override at {self.path}: emails use the built-in layout."
        if self.usable:
            return f"{self.path} passed the checks: emails use it."
        return f"{self.path} is NOT used, emails keep the built-in layout, because:\n" + "\n".join(
            f"- {problem}" for problem in self.problems
        )


def override_path(directory: Path) -> Path:
    return directory / LAYOUT


def check_layout(path: Path, sample_settings: Any = None) -> LayoutCheck:
    """Render the override with a sample announcement and check what every email needs."""
    if not path.is_file():
        return LayoutCheck(path, exists=False)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return LayoutCheck(path, exists=True, problems=[f"it cannot be read as UTF-8 text ({exc})"])
    return LayoutCheck(path, exists=True, problems=layout_problems(source, sample_settings))


def layout_problems(source: str, sample_settings: Any = None) -> list[str]:
    """What is wrong with a layout's source, as sentences; empty when it is fine."""
    settings = sample_settings or _SampleSettings()
    try:
        html = (
            Environment(autoescape=True)
            .from_string(source)
            .render(
                subject=_SAMPLE_SUBJECT,
                body=Markup(f"<h1>Sample</h1><p>{_BODY_MARK}</p>"),
                footer=Markup(f"<p>{_FOOTER_MARK}</p>"),
                settings=settings,
            )
        )
    except TemplateSyntaxError as exc:
        return [f"line {exc.lineno}: {exc.message}"]
    except Exception as exc:  # any error in an operator's template means: do not use it
        return [f"it does not render: {exc}"]
    problems = []
    if not re.search(r"<html\b[^>]*\blang=\"?[A-Za-z]{2,3}(-[A-Za-z0-9]+)*\"?", html, re.I):
        problems.append('it has no <html lang="en-GB"> (screen readers need the language)')
    title = re.search(r"<title>(.*?)</title>", html, re.I | re.S)
    if title is None or _SAMPLE_SUBJECT not in title.group(1):
        problems.append("it has no <title>{{ subject }}</title>")
    if _BODY_MARK not in html:
        problems.append("it does not show {{ body }} (the announcement itself)")
    if _FOOTER_MARK not in html:
        problems.append("it does not show {{ footer }} (who sent it, unsubscribe and preferences links)")
    if re.search(r"<script\b", html, re.I):
        problems.append("it contains a <script>, which email programs block")
    for table in re.findall(r"<table\b[^>]*>", html, re.I):
        if not re.search(r"\brole=\"?presentation\"?", table, re.I):
            problems.append('a layout <table> has no role="presentation"')
            break
    return problems


class _SampleSettings:
    forum_name = "Sample Parent Carer Forum"
    contact_address = "hello@forum.example"
    base_url = "https://forum.example"
    from_name = forum_name

    def __getattr__(self, name: str) -> str:
        return ""


class LayoutOverrideLoader(BaseLoader):
    """Finds only email/layout.html, and only when the operator's file passes check_layout."""

    def __init__(self, directory: Path) -> None:
        self.path = override_path(directory)
        self._checked: tuple[float, int] | None = None
        self._usable = False

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        if template != LAYOUT:
            raise TemplateNotFound(template)
        try:
            stat = self.path.stat()
        except OSError:
            raise TemplateNotFound(template) from None
        key = (stat.st_mtime, stat.st_size)
        if key != self._checked:
            result = check_layout(self.path)
            self._checked, self._usable = key, result.usable
            if result.exists and not result.usable:
                log.warning("email layout override not used: %s", "; ".join(result.problems))
            elif result.usable:
                log.info("email layout override in use: %s", self.path)
        if not self._usable:
            raise TemplateNotFound(template)
        source = self.path.read_text(encoding="utf-8")
        return source, str(self.path), lambda: self._still(key)

    def _still(self, key: tuple[float, int]) -> bool:
        try:
            stat = self.path.stat()
        except OSError:
            return False
        return (stat.st_mtime, stat.st_size) == key


def install_layout_override(app: Any, directory: Path) -> None:
    """Put the operator's layout (in Settings.email_template_dir) in front of the built-in templates,
    for email/layout.html only."""
    env = app.jinja_env
    env.loader = ChoiceLoader([LayoutOverrideLoader(directory), env.loader])
