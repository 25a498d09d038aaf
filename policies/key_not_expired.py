"""The secret key has not expired: from the instant of its expiry it fails, decided by
the clock at the request, whatever any background job has recorded."""

from __future__ import annotations

from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts

NAME = "key_not_expired"
STATUS = 401
ALLOWED = Decision.allow(NAME)


def evaluate(facts: AuthFacts) -> Decision:
    if facts.secret_key is None:
        return Decision.deny(NAME, "no secret key", STATUS)
    expires = facts.secret_key.expires_at
    if expires is not None and facts.now >= expires:
        return Decision.deny(NAME, "the secret key has expired", STATUS)
    return ALLOWED
