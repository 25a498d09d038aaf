"""Each authentication condition, one policy module: allow and deny, with the status."""

from __future__ import annotations

from dataclasses import replace

import pytest

from keyledger.policies import (
    account_key_valid,
    api_enabled,
    credentials_present,
    role_permits,
    same_account,
    secret_key_valid,
    source_ip_allowed,
)
from keyledger.policies.decision import Decision
from tests.unit.builders import (
    ACCOUNT,
    ACCOUNT_KEY,
    SECRET_KEY,
    USER,
    VALID_FACTS,
    facts,
    with_role,
    with_subnets,
)

ALL_POLICIES = [
    credentials_present,
    account_key_valid,
    api_enabled,
    secret_key_valid,
    same_account,
    role_permits,
    source_ip_allowed,
]


def assert_denied(decision: Decision, policy: str, status: int) -> None:
    assert decision.allowed is False
    assert decision.policy == policy
    assert decision.status == status
    assert decision.reason


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=lambda p: p.NAME)
def test_every_policy_allows_valid_facts(policy) -> None:
    decision = policy.evaluate(VALID_FACTS)
    assert decision.allowed is True
    assert decision.policy == policy.NAME
    assert decision.status == 200


@pytest.mark.parametrize(
    ("policy", "status"),
    [
        (credentials_present, 401),
        (account_key_valid, 401),
        (api_enabled, 401),
        (secret_key_valid, 401),
        (same_account, 401),
        (role_permits, 403),
        (source_ip_allowed, 403),
    ],
    ids=lambda p: getattr(p, "NAME", str(p)),
)
def test_policy_denial_status_is_401_for_authentication_and_403_for_authorization(
    policy, status: int
) -> None:
    assert status == policy.STATUS


def test_decision_is_immutable() -> None:
    decision = Decision.allow("x")
    with pytest.raises(AttributeError):
        decision.allowed = False  # type: ignore[misc]


# -- credentials_present ----------------------------------------------------------------


def test_credentials_present_denies_a_credentials_problem_with_401() -> None:
    decision = credentials_present.evaluate(facts(credentials_problem="missing key header"))
    assert_denied(decision, "credentials_present", 401)
    assert decision.reason == "missing key header"


# -- account_key_valid ------------------------------------------------------------------


def test_account_key_valid_denies_unknown_account_key_with_401() -> None:
    assert_denied(account_key_valid.evaluate(facts(account_key=None)), "account_key_valid", 401)


def test_account_key_valid_denies_account_key_that_does_not_verify_with_401() -> None:
    decision = account_key_valid.evaluate(facts(account_key_verified=False))
    assert_denied(decision, "account_key_valid", 401)


def test_account_key_valid_denies_when_the_account_is_unknown() -> None:
    assert_denied(account_key_valid.evaluate(facts(account=None)), "account_key_valid", 401)


def test_account_key_valid_denies_account_key_of_another_account() -> None:
    other = replace(ACCOUNT_KEY, account_id="acc-other")
    assert_denied(account_key_valid.evaluate(facts(account_key=other)), "account_key_valid", 401)


# -- api_enabled ------------------------------------------------------------------------


def test_api_enabled_denies_account_with_api_disabled_with_401() -> None:
    disabled = replace(ACCOUNT, api_enabled=False)
    assert_denied(api_enabled.evaluate(facts(account=disabled)), "api_enabled", 401)


def test_api_enabled_denies_when_there_is_no_account() -> None:
    assert_denied(api_enabled.evaluate(facts(account=None)), "api_enabled", 401)


# -- secret_key_valid -------------------------------------------------------------------


def test_secret_key_valid_denies_unknown_or_deleted_secret_key_with_401() -> None:
    assert_denied(secret_key_valid.evaluate(facts(secret_key=None)), "secret_key_valid", 401)


def test_secret_key_valid_denies_secret_key_that_does_not_verify_with_401() -> None:
    decision = secret_key_valid.evaluate(facts(secret_key_verified=False))
    assert_denied(decision, "secret_key_valid", 401)


# -- same_account -----------------------------------------------------------------------


def test_same_account_denies_secret_key_of_another_account_with_401() -> None:
    foreign = replace(SECRET_KEY, account_id="acc-other")
    assert_denied(same_account.evaluate(facts(secret_key=foreign)), "same_account", 401)


def test_same_account_denies_without_account_key() -> None:
    assert_denied(same_account.evaluate(facts(account_key=None)), "same_account", 401)


def test_same_account_denies_without_secret_key() -> None:
    assert_denied(same_account.evaluate(facts(secret_key=None)), "same_account", 401)


def test_same_account_denies_when_the_keys_user_no_longer_exists() -> None:
    assert_denied(same_account.evaluate(facts(user=None)), "same_account", 401)


def test_same_account_denies_user_of_another_account() -> None:
    foreign = replace(USER, account_id="acc-other")
    assert_denied(same_account.evaluate(facts(user=foreign)), "same_account", 401)


# -- role_permits -----------------------------------------------------------------------


def test_role_permits_denies_forbidden_role_with_403() -> None:
    assert_denied(role_permits.evaluate(with_role("Member")), "role_permits", 403)


def test_role_permits_denies_when_there_is_no_user() -> None:
    assert_denied(role_permits.evaluate(facts(user=None)), "role_permits", 403)


def test_role_permits_allows_permitted_role() -> None:
    assert role_permits.evaluate(with_role("Viewer", "GET", "/v1/api-keys")).allowed


# -- source_ip_allowed ------------------------------------------------------------------


def test_source_ip_allowed_allows_any_source_when_the_key_has_no_subnets() -> None:
    assert source_ip_allowed.evaluate(with_subnets(source_ip="203.0.113.9")).allowed


def test_source_ip_allowed_allows_unknown_source_when_the_key_has_no_subnets() -> None:
    assert source_ip_allowed.evaluate(with_subnets(source_ip=None)).allowed


def test_source_ip_allowed_allows_source_inside_an_allowed_subnet() -> None:
    decision = source_ip_allowed.evaluate(with_subnets("10.2.5.0/24", source_ip="10.2.5.7"))
    assert decision.allowed


def test_source_ip_allowed_allows_source_inside_any_of_several_subnets() -> None:
    decision = source_ip_allowed.evaluate(
        with_subnets("192.0.2.0/24", "2001:db8::/32", source_ip="2001:db8::1")
    )
    assert decision.allowed


def test_source_ip_allowed_denies_source_outside_the_subnets_with_403() -> None:
    decision = source_ip_allowed.evaluate(with_subnets("10.2.5.0/24", source_ip="10.2.6.1"))
    assert_denied(decision, "source_ip_allowed", 403)


def test_source_ip_allowed_allows_ipv4_mapped_ipv6_source_inside_an_ipv4_subnet() -> None:
    decision = source_ip_allowed.evaluate(with_subnets("10.2.5.0/24", source_ip="::ffff:10.2.5.7"))
    assert decision.allowed


def test_source_ip_allowed_denies_ipv4_mapped_ipv6_source_outside_the_subnet() -> None:
    decision = source_ip_allowed.evaluate(with_subnets("10.2.5.0/24", source_ip="::ffff:10.2.6.7"))
    assert_denied(decision, "source_ip_allowed", 403)


def test_source_ip_allowed_does_not_match_ipv4_source_against_ipv6_subnet() -> None:
    decision = source_ip_allowed.evaluate(with_subnets("::/1", source_ip="10.2.5.7"))
    assert_denied(decision, "source_ip_allowed", 403)


@pytest.mark.parametrize(
    "source_ip",
    [None, "", "not-an-ip", "10.2.5.256", "fe80::1%eth0", "10.2.5.7 ", "1" * 100],
)
def test_source_ip_allowed_denies_missing_or_malformed_source_with_403(
    source_ip: str | None,
) -> None:
    decision = source_ip_allowed.evaluate(with_subnets("10.2.5.0/24", source_ip=source_ip))
    assert_denied(decision, "source_ip_allowed", 403)


def test_source_ip_allowed_denies_without_secret_key() -> None:
    decision = source_ip_allowed.evaluate(facts(secret_key=None))
    assert_denied(decision, "source_ip_allowed", 403)
