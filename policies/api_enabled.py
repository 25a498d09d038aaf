"""The account has its API enabled (it is disabled by default)."""

from __future__ import annotations

from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts

NAME = "api_enabled"
STATUS = 401
ALLOWED = Decision.allow(NAME)


def evaluate(facts: AuthFacts) -> Decision:
    if facts.account is None or not facts.account.api_enabled:
        return Decision.deny(NAME, "API access is disabled for the account", STATUS)
    return ALLOWED
