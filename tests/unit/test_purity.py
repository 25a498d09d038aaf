"""The pure core (``policies/``, ``app/domain/``) imports neither Flask, Redis nor RQ."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.layout import ROOT, module_file, module_name

PURE_PACKAGES = ("policies", "app/domain")
FIRST_PARTY = frozenset({"keyledger"})
FORBIDDEN = frozenset({"flask", "flask_smorest", "werkzeug", "redis", "rq", "fakeredis"})

PURE_FILES = sorted(path for package in PURE_PACKAGES for path in (ROOT / package).glob("*.py"))


def is_type_checking_guard(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.AST, *, at_import_time_only: bool) -> set[str]:
    """Absolute names of the modules a file imports (``from a.b import c`` gives a.b and a.b.c).

    With ``at_import_time_only``, imports inside functions and ``if TYPE_CHECKING:`` are
    skipped: they do not run when the module is imported.
    """
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and is_type_checking_guard(child):
                for other in child.orelse:
                    visit_statement(other)
                continue
            if at_import_time_only and isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            ):
                continue
            visit_statement(child)

    def visit_statement(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports are not used in this project"
            assert node.module is not None
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        visit(node)

    visit(tree)
    return names


def with_parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


def import_closure(start: Path) -> tuple[set[str], set[Path]]:
    """Every module name imported, at import time, by ``start`` and the first-party
    modules it pulls in (their packages' ``__init__`` included)."""
    seen_files: set[Path] = set()
    seen_names: set[str] = set()
    pending = [start]
    for parent in with_parents(module_name(start)):
        found = module_file(parent)
        if found:
            pending.append(found)
    while pending:
        path = pending.pop()
        if path in seen_files:
            continue
        seen_files.add(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for name in imported_names(tree, at_import_time_only=path != start):
            seen_names.add(name)
            if name.split(".")[0] in FIRST_PARTY:
                for module in with_parents(name):
                    found = module_file(module)
                    if found:
                        pending.append(found)
    return seen_names, seen_files


def forbidden_in(names: set[str]) -> set[str]:
    return {name for name in names if name.split(".")[0] in FORBIDDEN}


def test_the_pure_packages_are_found() -> None:
    names = {module_name(p) for p in PURE_FILES}
    assert {
        "keyledger.policies.engine",
        "keyledger.policies.role_permits",
        "keyledger.domain.decisions",
    } <= names


@pytest.mark.parametrize("path", PURE_FILES, ids=module_name)
def test_pure_module_imports_no_web_or_redis_code_directly(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    assert forbidden_in(imported_names(tree, at_import_time_only=False)) == set()


@pytest.mark.parametrize("path", PURE_FILES, ids=module_name)
def test_pure_module_pulls_in_no_web_or_redis_code_through_first_party_imports(
    path: Path,
) -> None:
    names, files = import_closure(path)
    assert forbidden_in(names) == set(), sorted(str(f.relative_to(ROOT)) for f in files)


@pytest.mark.parametrize("path", PURE_FILES, ids=module_name)
def test_pure_module_depends_only_on_the_pure_core(path: Path) -> None:
    _, files = import_closure(path)
    allowed = {ROOT / "app" / "__init__.py", *(ROOT / p for p in PURE_PACKAGES)}
    outside = {
        str(f.relative_to(ROOT))
        for f in files
        if f not in allowed and not any(f.is_relative_to(ROOT / p) for p in PURE_PACKAGES)
    }
    assert outside == set()


def test_the_import_checker_catches_a_forbidden_import() -> None:
    tree = ast.parse("import os\nfrom redis import Redis\ndef f():\n    import flask\n")
    assert forbidden_in(imported_names(tree, at_import_time_only=False)) == {
        "redis",
        "redis.Redis",
        "flask",
    }
    assert forbidden_in(imported_names(tree, at_import_time_only=True)) == {"redis", "redis.Redis"}


def test_importing_the_pure_core_loads_no_web_or_redis_module() -> None:
    modules = [module_name(p) for p in PURE_FILES]
    program = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert set(result.stdout.split()) & FORBIDDEN == set()
