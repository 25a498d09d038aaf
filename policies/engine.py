"""Combines the policies deny-by-default: every policy must allow explicitly.

The first denial is the explanation (it goes to the server log); an empty
policy list allows nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from keyledger.policies import (
    account_key_in_grace,
    account_key_valid,
    api_enabled,
    credentials_present,
    key_enabled,
    key_not_expired,
    previous_secret_in_grace,
    previous_secret_read_only,
    role_permits,
    same_account,
    secret_key_valid,
    source_ip_allowed,
)
from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts

Policy = Callable[[AuthFacts], Decision]

#: Evaluation order: authentication conditions (401) before authorization (403).
DEFAULT_POLICIES: tuple[Policy, ...] = (
    credentials_present.evaluate,
    account_key_valid.evaluate,
    account_key_in_grace.evaluate,
    api_enabled.evaluate,
    secret_key_valid.evaluate,
    previous_secret_in_grace.evaluate,
    same_account.evaluate,
    key_enabled.evaluate,
    key_not_expired.evaluate,
    role_permits.evaluate,
    previous_secret_read_only.evaluate,
    source_ip_allowed.evaluate,
)

NAME = "engine"
ALL_ALLOW = Decision.allow(NAME, "all policies allow")


def evaluate(facts: AuthFacts, policies: Sequence[Policy] = DEFAULT_POLICIES) -> Decision:
    if not policies:
        return Decision.deny(NAME, "no policy configured", 403)
    for policy in policies:
        decision = policy(facts)
        if not decision.allowed:
            return decision
    return ALL_ALLOW
