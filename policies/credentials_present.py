"""Both headers are present and each holds a well-formed key of the right type."""

from __future__ import annotations

from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts

NAME = "credentials_present"
STATUS = 401
ALLOWED = Decision.allow(NAME)


def evaluate(facts: AuthFacts) -> Decision:
    if facts.credentials_problem is not None:
        return Decision.deny(NAME, facts.credentials_problem, STATUS)
    return ALLOWED
