"""The key's user's current role permits this method and path.

Owner: everything. Viewer: reads only (GET, HEAD), except the raw event
history. Logs Viewer: only the system log and the event history. Member,
Manager and Billing Admin: nothing through the API. Unknown roles: nothing.

Paths are compared case-insensitively and a trailing slash is ignored; beyond
that, doubt always goes against the caller, because the protected service's
router may read a path differently (Express ignores case, Java drops
``;params``, Rails and old Spring treat ``/events.json`` as ``/events``):

- an exclusion (the Viewer's ``/v1/events``) holds for every spelling that some
  router could read as the excluded path (``maybe_path``);
- an allow-list entry (the Logs Viewer's ``/v1/logs``) admits only a path that
  is plainly that one: the same ASCII letters in any case, at most one
  trailing slash (``plainly_path``). ``/v1/LOGS`` and ``/v1/logs/`` are the log;
  ``/v1//logs``, ``/v1/logs.csv`` and ``/v1/logs/x`` are not.
"""

from __future__ import annotations

import functools
import unicodedata

from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts

NAME = "role_permits"
STATUS = 403
ALLOWED = Decision.allow(NAME)

READ_METHODS = frozenset({"GET", "HEAD"})
AUDIT_PATHS = frozenset({"/v1/logs", "/v1/events", "/v1/audit/verify"})
VIEWER_EXCLUDED_PATHS = frozenset({"/v1/events", "/v1/audit/verify"})


def normalise_path(path: str) -> str:
    """The path without query, fragment and trailing slashes."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    return path


def plainly_path(path: str) -> str | None:
    """The path in lower case, without query and one trailing slash, when it is ASCII.

    Non-ASCII never compares equal to a listed path, even where a router's case
    folding would make it so (the long s, U+017F, folds to ``s``)."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path.lower() if path.isascii() else None


#: Paths up to this length have their folded form remembered (``maybe_path``).
REMEMBERED_PATH = 512


def maybe_path(path: str) -> str:
    """The path every listed path is compared with for an exclusion: folded as far as
    any router might fold it (Unicode compatibility forms and case, ``;params``,
    empty and dot segments, trailing dots and spaces, a ``.format`` suffix).

    Remembered per process for the 4,096 most recent paths of up to ``REMEMBERED_PATH``
    characters (a pure function of the path): a Viewer's every request folds its path,
    and folding it afresh cost a Viewer key over a tenth of its warm decision."""
    if len(path) > REMEMBERED_PATH:
        return _fold(path)
    return _remembered_fold(path)


def _fold(path: str) -> str:
    # upper() before casefold(): a router that compares in upper case reads the dotless
    # i (U+0131) as I, which casefold() alone leaves alone.
    folded = unicodedata.normalize("NFKC", normalise_path(path)).upper().casefold()
    segments: list[str] = []
    for raw in folded.split("/"):
        segment = raw.split(";", 1)[0]
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segment = segment.rstrip(". ")
        if segment:
            segments.append(segment)
    if segments:
        segments[-1] = segments[-1].split(".", 1)[0]
    return "/" + "/".join(segments)


_remembered_fold = functools.lru_cache(maxsize=4_096)(_fold)


def permits(role: str, method: str, path: str) -> bool:
    method = method.upper()
    if role == "Owner":
        return True
    if role == "Viewer":
        return method in READ_METHODS and maybe_path(path) not in VIEWER_EXCLUDED_PATHS
    if role == "Logs Viewer":
        return method in READ_METHODS and plainly_path(path) in AUDIT_PATHS
    return False


def evaluate(facts: AuthFacts) -> Decision:
    if facts.user is None:
        return Decision.deny(NAME, "no user behind the key", STATUS)
    if not permits(facts.user.role, facts.method, facts.path):
        return Decision.deny(
            NAME, f"role {facts.user.role!r} may not {facts.method} {facts.path}", STATUS
        )
    return ALLOWED
