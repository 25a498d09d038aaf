"""A secret rotated away with a grace period works until the grace ends, not an instant
longer; the current secret is not concerned."""

from __future__ import annotations

from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts

NAME = "previous_secret_in_grace"
STATUS = 401
ALLOWED = Decision.allow(NAME)


def evaluate(facts: AuthFacts) -> Decision:
    if facts.secret_key_verified or not facts.previous_secret_verified:
        return ALLOWED
    ends = None if facts.secret_key is None else facts.secret_key.previous_expires_at
    if ends is None or facts.now >= ends:
        return Decision.deny(NAME, "the previous secret's grace period has ended", STATUS)
    return ALLOWED
