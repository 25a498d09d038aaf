"""keyledger: event-sourced API-key authentication and authorization.

``create_app`` is imported lazily so that the pure core (``app.domain``) can be
imported without pulling in Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Application factory used by gunicorn: ``gunicorn 'app:create_app()'``."""
    from app.web.factory import create_app as factory

    return factory(config)
