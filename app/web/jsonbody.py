"""Request bodies are parsed with duplicate keys refused, at any depth.

``json.loads`` keeps the last of two equal keys, so ``{"role": "Member", "role":
"Owner"}`` made an Owner while anything reading the first one (a WAF, a reviewer, a
log) saw a Member. Every JSON body keyledger reads goes through ``strict_loads``: the
views' schemas (``blueprint.Parser``), ``request.get_json`` (the app's JSON provider)
and the secret-scanning endpoint.
"""

from __future__ import annotations

import json
from typing import Any

from flask.json.provider import DefaultJSONProvider


class DuplicateKey(ValueError):
    """A JSON object names the same key twice; ``key`` is the first repeated one."""

    def __init__(self, key: str):
        super().__init__(f"duplicate key {json.dumps(key)[:80]} in a JSON object")
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKey(key)
        obj[key] = value
    return obj


class TooDeep(ValueError):
    """A JSON document nested deeper than the parser's recursion allows."""

    def __init__(self) -> None:
        super().__init__("JSON nested too deeply")


def strict_loads(text: str | bytes, **kwargs: Any) -> Any:
    """``json.loads`` refusing a repeated key in any object (``DuplicateKey``) and a
    document nested too deeply to parse (``TooDeep``, a ``ValueError`` like every other
    refusal: ``json.loads`` raises ``RecursionError``, which a caller reading a body
    "silently" did not catch, and an anonymous request answered 500)."""
    try:
        return json.loads(text, object_pairs_hook=_unique, **kwargs)
    except RecursionError:
        raise TooDeep() from None


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with ``strict_loads``: ``request.get_json`` refuses (400)
    a body with a duplicate key."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return strict_loads(s, **kwargs)
