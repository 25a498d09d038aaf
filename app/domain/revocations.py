"""Which changes are revocations: they draw on their own budget (``KEYLEDGER_REVOCATIONS_PER_MINUTE``).

A revocation takes power away and gives none: deleting an API key, removing a user
(with their keys), disabling a key. Other changes (creating, renaming, re-enabling,
subnets, descriptions, role changes, demotions included) cannot use up the budget of
revocations, so a runaway or stolen Owner key that spends the account's budget of
changes does not stop the legitimate Owner from cutting it off. Every revocation
removes something a budgeted change created (or that existed already), so the log
still grows at most by the two budgets.

Two views of the same rule:

- ``is_revocation(events)``: what the ledger decides on, from the events a change
  records (a ``PUT`` that disables a key *and* changes its description is a change);
- ``revokes(method, path, body)``: the same judgement made on a request before it runs,
  for a gate that wants to let revocations through its own limits. Given no body, only
  the ``DELETE`` routes are recognised; a ``PUT /v1/api-keys/<name>`` is a revocation
  only when its body is exactly ``{"enabled": false}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from keyledger.domain import events as ev

#: Events that only take power away.
REVOKING = (
    ev.SecretKeyDeleted,
    ev.UserRemoved,
    ev.SecretKeyDisabled,
    ev.PreviousSecretRevoked,
    ev.SecretKeyRevoked,
)

KEY_ITEM = re.compile(r"/v1/api-keys/[^/]+")
USER_ITEM = re.compile(r"/v1/users/[^/]+")


def is_revocation(events: Iterable[ev.Event]) -> bool:
    """Whether a change that records ``events`` (at least one) only revokes."""
    recorded = list(events)
    return bool(recorded) and all(isinstance(event, REVOKING) for event in recorded)


def revokes(method: str, path: str, body: Mapping[str, Any] | None = None) -> bool:
    """Whether a request to keyledger's API asks for a revocation.

    ``path`` is the request's path as routed (no query string); it must be exactly a
    key's or a user's item (Flask's routes are case-sensitive, and so is this), so a
    path merely resembling one is never taken for a revocation.
    """
    method = method.upper()
    if method == "DELETE":
        return bool(KEY_ITEM.fullmatch(path) or USER_ITEM.fullmatch(path))
    if method == "PUT" and KEY_ITEM.fullmatch(path):
        return isinstance(body, Mapping) and set(body) == {"enabled"} and body["enabled"] is False
    return False
