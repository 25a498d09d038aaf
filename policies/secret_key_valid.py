"""The secret key exists (not deleted) and its secret verifies: the current secret, or
the previous one (whose grace period ``previous_secret_in_grace`` decides)."""

from __future__ import annotations

from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts

NAME = "secret_key_valid"
STATUS = 401
ALLOWED = Decision.allow(NAME)


def evaluate(facts: AuthFacts) -> Decision:
    if facts.secret_key is None:
        return Decision.deny(NAME, "unknown or deleted secret key id", STATUS)
    if not (facts.secret_key_verified or facts.previous_secret_verified):
        return Decision.deny(NAME, "secret key secret does not verify", STATUS)
    return ALLOWED
