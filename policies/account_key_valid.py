"""The account key exists, is the account's current key, and its secret verifies."""

from __future__ import annotations

from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts

NAME = "account_key_valid"
STATUS = 401
ALLOWED = Decision.allow(NAME)


def evaluate(facts: AuthFacts) -> Decision:
    if facts.account_key is None:
        return Decision.deny(NAME, "unknown or revoked account key id", STATUS)
    if not facts.account_key_verified:
        return Decision.deny(NAME, "account key secret does not verify", STATUS)
    if facts.account is None or facts.account.id != facts.account_key.account_id:
        return Decision.deny(NAME, "account key belongs to no known account", STATUS)
    return ALLOWED
