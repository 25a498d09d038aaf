"""The policies' inputs cannot change under them (found by ``make mutate``, docs/mutation.md).

A policy is a pure function of the facts; the engine hands the same facts to every
policy in turn, so none of them may be able to alter what the next one sees.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from keyledger.policies import (
    account_key_in_grace,
    account_key_valid,
    engine,
    previous_secret_in_grace,
    same_account,
    secret_key_valid,
)
from keyledger.policies.decision import Decision
from keyledger.policies.facts import (
    AccountKeyRecord,
    AccountRecord,
    AuthFacts,
    SecretKeyRecord,
    UserRecord,
)
from tests.unit.builders import ACCOUNT_KEY, SECRET_KEY, USER, VALID_FACTS, facts

RECORDS = [
    AccountRecord("acc-1", "Acme", True),
    AccountKeyRecord("ak-1", "acc-1"),
    SecretKeyRecord("sk-1", "acc-1", "ann-key", "u-1", ()),
    UserRecord("u-1", "acc-1", "Ann", "Viewer"),
    AuthFacts("GET", "/v1/users", "10.0.0.1"),
    Decision.allow("test"),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_facts_records_and_decisions_cannot_be_changed(record: object) -> None:
    field = dataclasses.fields(record)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, field, "changed")


# Account ids compare for equality only: a foreign id sorting before or after the
# account's own ("acc-0001") is refused alike.
FOREIGN_IDS = ["acc-0000", "acc-0002", "acc-", "acc-00011"]


@pytest.mark.parametrize("foreign", FOREIGN_IDS)
def test_a_secret_key_of_any_other_account_is_refused(foreign: str) -> None:
    decision = same_account.evaluate(facts(secret_key=replace(SECRET_KEY, account_id=foreign)))
    assert (decision.allowed, decision.status) == (False, 401)


@pytest.mark.parametrize("foreign", FOREIGN_IDS)
def test_a_user_of_any_other_account_is_refused(foreign: str) -> None:
    decision = same_account.evaluate(facts(user=replace(USER, account_id=foreign)))
    assert (decision.allowed, decision.status) == (False, 401)


@pytest.mark.parametrize("foreign", FOREIGN_IDS)
def test_an_account_key_of_any_other_account_is_refused(foreign: str) -> None:
    decision = account_key_valid.evaluate(
        facts(account_key=replace(ACCOUNT_KEY, account_id=foreign))
    )
    assert (decision.allowed, decision.status) == (False, 401)


def test_the_same_account_throughout_is_allowed() -> None:
    assert same_account.evaluate(VALID_FACTS).allowed
    assert account_key_valid.evaluate(VALID_FACTS).allowed


@pytest.mark.parametrize("current", [True, False])
def test_the_previous_secrets_grace_is_only_asked_about_a_previous_secret(current: bool) -> None:
    # Without the previous secret presented, another policy decides; this one allows.
    decision = previous_secret_in_grace.evaluate(
        facts(secret_key_verified=current, previous_secret_verified=False)
    )
    assert decision.allowed


@pytest.mark.parametrize(("ends_in", "allowed"), [(60.0, True), (0.0, False), (-3600.0, False)])
def test_a_rotated_account_key_works_until_its_grace_ends_and_never_after(
    ends_in: float, allowed: bool
) -> None:
    now = 1_700_000_000.0
    decision = account_key_in_grace.evaluate(
        facts(now=now, account_key=replace(ACCOUNT_KEY, expires_at=now + ends_in))
    )
    assert decision.allowed is allowed


def test_facts_that_do_not_say_a_key_verified_are_refused() -> None:
    # Fail closed: a fact left out is a check that did not pass.
    unstated = AuthFacts(
        "GET",
        "/v1/",
        "10.2.5.7",
        account_key=ACCOUNT_KEY,
        account=VALID_FACTS.account,
        secret_key=SECRET_KEY,
        user=USER,
        now=VALID_FACTS.now,
    )
    assert engine.evaluate(unstated).policy == account_key_valid.NAME
    only_account = replace(unstated, account_key_verified=True)
    assert engine.evaluate(only_account).policy == secret_key_valid.NAME
    assert engine.evaluate(replace(only_account, secret_key_verified=True)).allowed
