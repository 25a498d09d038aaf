"""An account key rotated away with a grace period works until the grace ends; the
current account key has no end."""

from __future__ import annotations

from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts

NAME = "account_key_in_grace"
STATUS = 401
ALLOWED = Decision.allow(NAME)


def evaluate(facts: AuthFacts) -> Decision:
    if facts.account_key is None:
        return Decision.deny(NAME, "no account key", STATUS)
    ends = facts.account_key.expires_at
    if ends is not None and facts.now >= ends:
        return Decision.deny(NAME, "the previous account key's grace period has ended", STATUS)
    return ALLOWED
