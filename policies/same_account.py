"""The secret key belongs to the same account as the account key."""

from __future__ import annotations

from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts

NAME = "same_account"
STATUS = 401
ALLOWED = Decision.allow(NAME)


def evaluate(facts: AuthFacts) -> Decision:
    if (
        facts.account_key is None
        or facts.secret_key is None
        or facts.secret_key.account_id != facts.account_key.account_id
    ):
        return Decision.deny(NAME, "secret key belongs to another account", STATUS)
    if facts.user is None or facts.user.account_id != facts.account_key.account_id:
        return Decision.deny(NAME, "the key's user no longer exists in the account", STATUS)
    return ALLOWED
