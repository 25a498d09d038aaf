"""The engine: deny by default, every policy must allow, the first denial explains."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace

import pytest

from keyledger.policies import engine
from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts
from tests.unit.builders import SECRET_KEY, VALID_FACTS, facts, with_role

Policy = Callable[[AuthFacts], Decision]


class Spy:
    """A policy with a fixed answer that remembers whether it was asked."""

    def __init__(self, decision: Decision):
        self.decision = decision
        self.calls = 0

    def __call__(self, _facts: AuthFacts) -> Decision:
        self.calls += 1
        return self.decision


def allowing(name: str = "yes") -> Spy:
    return Spy(Decision.allow(name))


def denying(name: str, status: int = 401) -> Spy:
    return Spy(Decision.deny(name, f"{name} says no", status))


@pytest.mark.parametrize("empty", [(), []])
def test_empty_policy_list_denies(empty) -> None:
    decision = engine.evaluate(VALID_FACTS, empty)
    assert decision.allowed is False
    assert decision.status in (401, 403)


def test_all_policies_allowing_allows() -> None:
    decision = engine.evaluate(VALID_FACTS, [allowing("a"), allowing("b")])
    assert decision.allowed is True


def test_one_denial_among_allows_denies() -> None:
    decision = engine.evaluate(VALID_FACTS, [allowing("a"), allowing("b"), denying("c")])
    assert decision.allowed is False
    assert decision.policy == "c"


def test_first_denial_is_the_explanation() -> None:
    decision = engine.evaluate(
        VALID_FACTS, [allowing("a"), denying("first", 403), denying("second", 401)]
    )
    assert decision == Decision.deny("first", "first says no", 403)


def test_policies_after_the_first_denial_are_not_evaluated() -> None:
    later = allowing("later")
    engine.evaluate(VALID_FACTS, [denying("first"), later])
    assert later.calls == 0


def test_every_policy_is_evaluated_when_all_allow() -> None:
    spies = [allowing("a"), allowing("b"), allowing("c")]
    engine.evaluate(VALID_FACTS, spies)
    assert [spy.calls for spy in spies] == [1, 1, 1]


def test_default_policies_allow_valid_facts() -> None:
    assert engine.evaluate(VALID_FACTS).allowed is True


def test_default_policies_cover_every_condition() -> None:
    names = {sys.modules[policy.__module__].NAME for policy in engine.DEFAULT_POLICIES}
    assert names == {
        "credentials_present",
        "account_key_valid",
        "account_key_in_grace",
        "api_enabled",
        "secret_key_valid",
        "previous_secret_in_grace",
        "previous_secret_read_only",
        "same_account",
        "key_enabled",
        "key_not_expired",
        "role_permits",
        "source_ip_allowed",
    }


def test_default_policies_put_every_401_condition_before_every_403_condition() -> None:
    statuses = [sys.modules[policy.__module__].STATUS for policy in engine.DEFAULT_POLICIES]
    assert statuses == sorted(statuses)
    assert statuses[0] == 401
    assert statuses[-1] == 403


def test_default_policies_check_authentication_before_authorization() -> None:
    both_wrong = replace(
        with_role("Member"),
        secret_key_verified=False,
        secret_key=replace(SECRET_KEY, allowed_source_ips=("192.0.2.0/24",)),
    )
    decision = engine.evaluate(both_wrong)
    assert (decision.policy, decision.status) == ("secret_key_valid", 401)


def test_default_policies_report_the_credentials_problem_first() -> None:
    decision = engine.evaluate(facts(credentials_problem="missing key header", account=None))
    assert decision.policy == "credentials_present"
    assert decision.status == 401


def test_default_policies_deny_role_with_403() -> None:
    decision = engine.evaluate(with_role("Billing Admin"))
    assert (decision.allowed, decision.policy, decision.status) == (False, "role_permits", 403)


def test_default_policies_deny_source_outside_subnets_with_403() -> None:
    restricted = facts(
        secret_key=replace(SECRET_KEY, allowed_source_ips=("192.0.2.0/24",)),
        source_ip="10.2.5.7",
    )
    decision = engine.evaluate(restricted)
    assert (decision.allowed, decision.policy, decision.status) == (
        False,
        "source_ip_allowed",
        403,
    )


def test_default_policies_deny_facts_with_nothing_looked_up() -> None:
    bare = AuthFacts(method="GET", path="/v1/", source_ip="10.0.0.1")
    assert engine.evaluate(bare).allowed is False
