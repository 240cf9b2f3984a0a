"""The architecture (issue 16): the import-linter contracts hold, no private name crosses modules, forms in forms.py.

The contracts themselves are in pyproject.toml ([tool.importlinter]); scripts/test.sh runs them too."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Source:
    path: Path
    module: str  # dotted, e.g. mailer.members.membership
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def sources(*folders: str) -> Iterator[Source]:
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield Source(path, ".".join(parts), ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def absolute_module(source: Source, node: ast.ImportFrom) -> str:
    """The module a `from ... import` names, with relative imports resolved against the importing file."""
    if not node.level:
        return node.module or ""
    package = source.module.split(".") if source.is_package else source.module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def mailer_modules_bound(source: Source) -> dict[str, str]:
    """Local names bound to a mailer module by an import: `import mailer.x as m`, `from mailer import x`."""
    bound: dict[str, str] = {}
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "mailer" or alias.name.startswith("mailer."):
                    bound[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else "mailer"
        elif isinstance(node, ast.ImportFrom):
            module = absolute_module(source, node)
            if module == "mailer" or module.startswith("mailer."):
                for alias in node.names:
                    bound[alias.asname or alias.name] = f"{module}.{alias.name}"
    return bound


def dotted(node: ast.expr, bound: dict[str, str]) -> str | None:
    """`m.sub` as the dotted mailer path it stands for, or None when it is no imported mailer name."""
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    if isinstance(node, ast.Attribute):
        base = dotted(node.value, bound)
        return None if base is None else f"{base}.{node.attr}"
    return None


def private_names_from_other_modules(source: Source) -> Iterator[str]:
    bound = mailer_modules_bound(source)
    for node in ast.walk(source.tree):
        if isinstance(node, ast.ImportFrom):
            module = absolute_module(source, node)
            if module != source.module and (module == "mailer" or module.startswith("mailer.")):
                for alias in node.names:
                    if is_private(alias.name):
                        yield f"{source.path.relative_to(ROOT)}:{node.lineno}: from {module} import {alias.name}"
        elif isinstance(node, ast.Attribute) and is_private(node.attr):
            owner = dotted(node.value, bound)
            if owner is not None and owner != source.module:
                yield f"{source.path.relative_to(ROOT)}:{node.lineno}: {owner}.{node.attr}"


def is_form_base(base: ast.expr) -> bool:
    """FlaskForm, Form, wtforms.Form or any *Form class named as a base."""
    return isinstance(base, (ast.Name, ast.Attribute)) and ast.unparse(base).endswith("Form")


def test_import_contracts_are_kept() -> None:
    """lint-imports (the layers, web only through create_app, no Flask in domain code) exits 0."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_private_name_is_imported_from_another_module() -> None:
    """No module in mailer/ or tests/ imports, or reaches through an attribute, another mailer module's _name."""
    found = [line for source in sources("mailer", "tests") for line in private_names_from_other_modules(source)]
    assert found == [], "make these names public, or move the code to where it belongs:\n" + "\n".join(found)


def test_the_private_name_check_finds_what_it_should() -> None:
    """The check above is no empty pass: it reports a from-import and an attribute of another module's _name."""
    tree = ast.parse(
        "from mailer.members.membership import _hidden, public\n"
        "from mailer.members import membership\n"
        "import mailer.engine.queue as queue\n"
        "membership._other(); queue._loop; membership.__doc__; _own()\n"
    )
    source = Source(ROOT / "mailer" / "example.py", "mailer.example", tree)
    assert sorted(line.split(": ", 1)[1] for line in private_names_from_other_modules(source)) == [
        "from mailer.members.membership import _hidden",
        "mailer.engine.queue._loop",
        "mailer.members.membership._other",
    ]


def test_forms_are_defined_only_in_forms_modules() -> None:
    """Every FlaskForm subclass in mailer/ is in a web/**/forms.py (views stay thin, issue 16).

    web/libs.py is left out: it only declares Flask-WTF's own FlaskForm for mypy (under TYPE_CHECKING)."""
    found = [
        f"{source.path.relative_to(ROOT)}:{node.lineno}: {node.name}"
        for source in sources("mailer")
        if (source.path.name != "forms.py" or "web" not in source.path.parts) and source.path.name != "libs.py"
        for node in ast.walk(source.tree)
        if isinstance(node, ast.ClassDef)
        and any(is_form_base(base) for base in node.bases)
    ]
    assert found == [], "move these forms into the web package's forms.py:\n" + "\n".join(found)
