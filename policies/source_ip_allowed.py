"""The request comes from one of the key's allowed subnets, when it has any."""

from __future__ import annotations

from keyledger.domain.network import address_allowed, client_address
from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts

NAME = "source_ip_allowed"
STATUS = 403
ALLOWED = Decision.allow(NAME)
UNRESTRICTED = Decision.allow(NAME, "key has no source restriction")


def evaluate(facts: AuthFacts) -> Decision:
    if facts.secret_key is None:
        return Decision.deny(NAME, "no secret key", STATUS)
    subnets = facts.secret_key.allowed_source_ips
    if not subnets:
        return UNRESTRICTED
    address = client_address(facts.source_ip)
    if address is None:
        return Decision.deny(NAME, "source address missing or malformed", STATUS)
    if not address_allowed(address, subnets):
        return Decision.deny(NAME, f"source {address} is outside the key's subnets", STATUS)
    return ALLOWED
