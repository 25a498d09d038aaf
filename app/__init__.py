"""keyledger: event-sourced API-key authentication and authorization.

The repository's folders install as one import package (``docs/packaging.md``):
``app/`` is ``keyledger``, ``policies/`` is ``keyledger.policies`` and
``workers/`` is ``keyledger.workers``.

Public names, imported lazily so that the pure core (``keyledger.domain``,
``keyledger.policies``) can be imported without pulling in Flask:

- ``create_app``: the WSGI application factory (``keyledger:create_app()``);
- ``KeyLedger`` and ``require_api_key``: the Flask extension that protects
  another service in process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from keyledger.web.extension import KeyLedger, require_api_key

__all__ = ["KeyLedger", "create_app", "require_api_key"]


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The WSGI application factory: ``keyledger:create_app()`` (``keyledger serve`` runs
    it under Granian through ``keyledger.serving.served_app``)."""
    from keyledger.web.factory import create_app as factory

    return factory(config)


def __getattr__(name: str) -> Any:
    if name in ("KeyLedger", "require_api_key"):
        from keyledger.web import extension

        return getattr(extension, name)
    raise AttributeError(f"module 'keyledger' has no attribute {name!r}")
