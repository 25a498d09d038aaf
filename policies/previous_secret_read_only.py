"""A secret rotated away with a grace period may read, but may not change keys or users.

The grace period exists so that clients can move to the new secret; it must not let
whoever holds the old one (after a suspected leak, a leaker) rotate the key again,
receive a fresh current secret and end the legitimate newer one, nor mint, delete or
re-scope keys, nor remove or demote the users who hold them. So a request made with
a previous secret in its grace is refused (403) any method but ``GET`` and ``HEAD`` on
``/v1/api-keys`` and ``/v1/users`` and everything below them; reads, and the rest of
the role's rights (the protected services' paths behind forward auth), stay.

Paths are folded as far as any router might fold them (``role_permits.maybe_path``),
so no spelling of these paths escapes the rule.
"""

from __future__ import annotations

from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts
from keyledger.policies.role_permits import READ_METHODS, maybe_path

NAME = "previous_secret_read_only"
STATUS = 403
ALLOWED = Decision.allow(NAME)
#: The answer's description (the caller holds a valid secret: tell it what to do).
REASON = (
    "a previous secret, still in its grace period after a rotation, may read but may "
    "not change API keys or users: use the key's current secret"
)
GUARDED = ("/v1/api-keys", "/v1/users")


def changes_keys_or_users(method: str, path: str) -> bool:
    if method.upper() in READ_METHODS:
        return False
    folded = maybe_path(path)
    return any(folded == root or folded.startswith(root + "/") for root in GUARDED)


def evaluate(facts: AuthFacts) -> Decision:
    if facts.secret_key_verified or not facts.previous_secret_verified:
        return ALLOWED
    if changes_keys_or_users(facts.method, facts.path):
        return Decision.deny(NAME, REASON, STATUS)
    return ALLOWED
