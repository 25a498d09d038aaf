"""The key's user's current role permits this method and path.

Owner: everything. Viewer: reads only (GET, HEAD), except the raw event
history. Logs Viewer: only the system log and the event history. Member,
Manager and Billing Admin: nothing through the API. Unknown roles: nothing.
"""

from __future__ import annotations

from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts

NAME = "role_permits"
STATUS = 403
ALLOWED = Decision.allow(NAME)

READ_METHODS = frozenset({"GET", "HEAD"})
AUDIT_PATHS = frozenset({"/v1/logs", "/v1/events", "/v1/audit/verify"})
VIEWER_EXCLUDED_PATHS = frozenset({"/v1/events", "/v1/audit/verify"})


def normalise_path(path: str) -> str:
    path = path.split("?", 1)[0].split("#", 1)[0]
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    return path


def permits(role: str, method: str, path: str) -> bool:
    method, path = method.upper(), normalise_path(path)
    if role == "Owner":
        return True
    if role == "Viewer":
        return method in READ_METHODS and path not in VIEWER_EXCLUDED_PATHS
    if role == "Logs Viewer":
        return method in READ_METHODS and path in AUDIT_PATHS
    return False


def evaluate(facts: AuthFacts) -> Decision:
    if facts.user is None:
        return Decision.deny(NAME, "no user behind the key", STATUS)
    if not permits(facts.user.role, facts.method, facts.path):
        return Decision.deny(
            NAME, f"role {facts.user.role!r} may not {facts.method} {facts.path}", STATUS
        )
    return ALLOWED
