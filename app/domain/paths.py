"""The path forward authentication decides on, and the spellings it refuses to decide.

A proxy asks keyledger about the original request's URI; the protected service
then routes that same URI with its own rules. Routers disagree: Express matches
case-insensitively, Java containers strip ``;params``, many treat ``%2F`` as data
while others decode it into a separator, Windows servers drop trailing dots and
spaces. A decision is only safe for a path every router reads alike, so a URI
whose path any of them could read as a different path is refused (400) rather
than decided:

- a percent-encoded ``/``, ``\\``, ``%``, ``?``, ``#`` or ``.`` (``%2F`` ... ``%2E``, any
  case), or a ``%`` that does not start an encoding;
- a ``;``, a backslash, a ``#``, a control character (raw or decoded), raw
  non-ASCII bytes, or percent-encoded bytes that are not UTF-8;
- a dot segment (``.`` or ``..``), or a segment ending in a dot or a space.

Everything else is decoded exactly once: ``/v1/%65vents`` is decided as
``/v1/events``, ``/v1/%2565vents`` is refused.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

#: Encoded characters that some router decodes before routing and another does not.
REFUSED_ENCODINGS = {"2f": "/", "5c": "\\", "25": "%", "3f": "?", "23": "#", "2e": "."}
_ENCODING = re.compile(r"%(..)", re.DOTALL)
_HEX = re.compile(r"[0-9A-Fa-f]{2}")


class AmbiguousPath(ValueError):
    """The URI's path could be routed as a different path than the one decided on."""


def decided_path(uri: str) -> str:
    """The path of an original request URI (query dropped), decoded once.

    Raises ``AmbiguousPath`` naming the problem when routers could disagree on it.
    """
    if not uri.isascii():
        raise AmbiguousPath("the URI has raw non-ASCII characters (percent-encode them)")
    if "#" in uri:
        raise AmbiguousPath("the URI has a '#' (a fragment is never part of a request)")
    raw = uri.split("?", 1)[0]
    if not raw.startswith("/"):
        raise AmbiguousPath("the URI is not an absolute path")
    _refuse_characters(raw)
    for found in _ENCODING.finditer(raw + "  "):
        code = found.group(1)
        if not _HEX.fullmatch(code):
            raise AmbiguousPath("the path has a '%' that does not start a percent-encoding (%XX)")
        decoded = REFUSED_ENCODINGS.get(code.lower())
        if decoded is not None:
            raise AmbiguousPath(f"the path has a percent-encoded '{decoded}' (%{code})")
    try:
        path = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise AmbiguousPath("the path has percent-encoded bytes that are not UTF-8") from None
    _refuse_characters(path)
    for segment in path.split("/")[1:]:
        if segment in (".", ".."):
            raise AmbiguousPath(f"the path has a dot segment ({segment!r})")
        if segment.endswith(".") or segment[-1:].isspace():
            raise AmbiguousPath("the path has a segment ending in a dot or a space")
    return path


def _refuse_characters(path: str) -> None:
    if not path.isprintable():
        raise AmbiguousPath("the path has a control or other unprintable character")
    if "\\" in path:
        raise AmbiguousPath("the path has a backslash")
    if ";" in path:
        raise AmbiguousPath("the path has a ';' (path parameters)")
