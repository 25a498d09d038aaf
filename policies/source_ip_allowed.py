"""The request comes from one of the key's allowed subnets, when it has any."""

from __future__ import annotations

import functools

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
    return decided(facts.source_ip, subnets)


@functools.lru_cache(maxsize=16_384)
def decided(source_ip: str | None, subnets: tuple[str, ...]) -> Decision:
    """The decision for a caller's address and an allow list, remembered per process for
    the most recent 16,384 pairs (both are immutable values, and so is the decision): a
    key with an allow list is checked at every request, and parsing and matching each
    time cost such a key about a quarter of its warm decision."""
    address = client_address(source_ip)
    if address is None:
        return Decision.deny(NAME, "source address missing or malformed", STATUS)
    if not address_allowed(address, subnets):
        return Decision.deny(NAME, f"source {address} is outside the key's subnets", STATUS)
    return ALLOWED
