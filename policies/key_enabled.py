"""The secret key is not disabled (``PUT /v1/api-keys/{name}`` ``{"enabled": false}``)."""

from __future__ import annotations

from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts

NAME = "key_enabled"
STATUS = 401
ALLOWED = Decision.allow(NAME)


def evaluate(facts: AuthFacts) -> Decision:
    if facts.secret_key is None:
        return Decision.deny(NAME, "no secret key", STATUS)
    if not facts.secret_key.enabled:
        return Decision.deny(NAME, "the secret key is disabled", STATUS)
    return ALLOWED
