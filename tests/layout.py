"""Where each import package lives in the repository (docs/packaging.md).

The folders the design fixes install as one package: ``app/`` is ``keyledger``,
``policies/`` is ``keyledger.policies``, ``workers/`` is ``keyledger.workers``.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: folder -> the package it installs as (a nested folder before its parent)
FOLDERS = {"policies": "keyledger.policies", "workers": "keyledger.workers", "app": "keyledger"}
PACKAGE = "keyledger"


def module_name(path: Path) -> str:
    """The import name of a source file of the project (``app/web/auth.py``: keyledger.web.auth)."""
    parts = path.resolve().relative_to(ROOT).with_suffix("").parts
    package = FOLDERS[parts[0]]
    rest = parts[1:-1] if parts[-1] == "__init__" else parts[1:]
    return ".".join((package, *rest))


def module_file(name: str) -> Path | None:
    """The source file of a first-party module name, or None."""
    for folder, package in FOLDERS.items():
        if name == package or name.startswith(package + "."):
            rest = name[len(package) :].lstrip(".").split(".") if name != package else []
            base = ROOT.joinpath(folder, *[p for p in rest if p])
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    return candidate
            return None
    return None


def package_folders() -> dict[str, Path]:
    """Every package the folders hold: import name -> folder (those with ``__init__.py``)."""
    found: dict[str, Path] = {}
    for folder in FOLDERS:
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found[module_name(init)] = init.parent
    return found
