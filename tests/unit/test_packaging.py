"""keyledger installs as one import package, and every import goes through its name."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from tests.layout import FOLDERS, ROOT, package_folders

SOURCE_FOLDERS = (*FOLDERS, "tests", "bench")
SOURCES = sorted(
    path
    for folder in SOURCE_FOLDERS
    for path in (ROOT / folder).rglob("*.py")
    if "__pycache__" not in path.parts
)
#: What the folders used to install as: nothing may import them by these names any more.
OLD_TOP_LEVEL = frozenset({"app", "policies", "workers"})


def setuptools_config() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        config: dict[str, object] = tomllib.load(handle)["tool"]["setuptools"]
    return config


def test_each_folder_installs_under_keyledger() -> None:
    assert setuptools_config()["package-dir"] == {
        package: folder for folder, package in FOLDERS.items()
    }


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    listed = setuptools_config()["packages"]
    assert isinstance(listed, list)
    assert sorted(listed) == sorted(package_folders())
    assert all(name == "keyledger" or name.startswith("keyledger.") for name in listed)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_the_folders_by_their_old_names(path: Path) -> None:
    old = {name for name in imports_of(path) if name.split(".")[0] in OLD_TOP_LEVEL}
    assert old == set()


def test_the_old_name_check_sees_an_old_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from app.web import auth\nimport policies.engine\nimport keyledger\n")
    assert {n.split(".")[0] for n in imports_of(sample)} & OLD_TOP_LEVEL == {"app", "policies"}


def test_the_extension_is_imported_from_the_package() -> None:
    from keyledger import KeyLedger, require_api_key
    from keyledger.web import extension

    assert KeyLedger is extension.KeyLedger
    assert require_api_key is extension.require_api_key


def test_the_wsgi_factory_is_the_package_attribute() -> None:
    import keyledger
    from keyledger.web import factory

    assert callable(keyledger.create_app)
    assert keyledger.create_app.__module__ == "keyledger"
    assert factory.create_app.__module__ == "keyledger.web.factory"
    with pytest.raises(AttributeError):
        _ = keyledger.no_such_name  # type: ignore[attr-defined]
