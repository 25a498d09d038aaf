"""The lifecycle's policy modules: pure functions of the facts and the clock (no Redis)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from keyledger.policies import (
    account_key_in_grace,
    engine,
    key_enabled,
    key_not_expired,
    previous_secret_in_grace,
    secret_key_valid,
)
from tests.unit.builders import ACCOUNT_KEY, SECRET_KEY, VALID_FACTS, facts

NOW = 1_800_000_000.0


def test_a_disabled_key_is_denied_with_401() -> None:
    decision = key_enabled.evaluate(facts(secret_key=replace(SECRET_KEY, enabled=False)))
    assert (decision.allowed, decision.status) == (False, 401)


def test_an_enabled_key_passes() -> None:
    assert key_enabled.evaluate(VALID_FACTS).allowed


@pytest.mark.parametrize(
    ("now", "allowed"), [(NOW - 0.001, True), (NOW, False), (NOW + 86400, False)]
)
def test_a_key_is_denied_from_the_instant_of_its_expiry(now: float, allowed: bool) -> None:
    decision = key_not_expired.evaluate(
        facts(secret_key=replace(SECRET_KEY, expires_at=NOW), now=now)
    )
    assert decision.allowed is allowed
    assert decision.status == (200 if allowed else 401)


def test_a_key_without_expiry_never_expires() -> None:
    assert key_not_expired.evaluate(facts(now=NOW * 10)).allowed


def previous(now: float, ends: float | None = NOW):
    return facts(
        secret_key=replace(SECRET_KEY, previous_expires_at=ends),
        secret_key_verified=False,
        previous_secret_verified=True,
        now=now,
    )


@pytest.mark.parametrize(("now", "allowed"), [(NOW - 1, True), (NOW, False), (NOW + 1, False)])
def test_the_previous_secret_works_until_its_grace_ends(now: float, allowed: bool) -> None:
    assert previous_secret_in_grace.evaluate(previous(now)).allowed is allowed
    assert engine.evaluate(previous(now)).allowed is allowed


def test_a_previous_secret_without_a_grace_end_is_denied() -> None:
    assert not previous_secret_in_grace.evaluate(previous(NOW - 1, ends=None)).allowed


def test_the_current_secret_is_not_concerned_by_the_grace() -> None:
    ended = facts(secret_key=replace(SECRET_KEY, previous_expires_at=NOW), now=NOW + 1)
    assert previous_secret_in_grace.evaluate(ended).allowed
    assert engine.evaluate(ended).allowed


def test_a_secret_that_is_neither_current_nor_previous_is_invalid() -> None:
    neither = facts(secret_key_verified=False, previous_secret_verified=False)
    assert not secret_key_valid.evaluate(neither).allowed
    assert secret_key_valid.evaluate(previous(NOW - 1)).allowed


@pytest.mark.parametrize(("now", "allowed"), [(NOW - 1, True), (NOW, False)])
def test_an_account_key_rotated_away_works_until_its_grace_ends(now: float, allowed: bool) -> None:
    retired = facts(account_key=replace(ACCOUNT_KEY, expires_at=NOW), now=now)
    assert account_key_in_grace.evaluate(retired).allowed is allowed
    assert engine.evaluate(retired).allowed is allowed


@pytest.mark.parametrize(
    "changed",
    [
        {"secret_key": replace(SECRET_KEY, enabled=False)},
        {"secret_key": replace(SECRET_KEY, expires_at=NOW), "now": NOW},
        {"account_key": replace(ACCOUNT_KEY, expires_at=NOW), "now": NOW},
    ],
)
def test_every_lifecycle_denial_is_the_uniform_401(changed: dict[str, object]) -> None:
    decision = engine.evaluate(facts(**changed))
    assert (decision.allowed, decision.status) == (False, 401)


def test_the_lifecycle_policies_deny_without_a_key() -> None:
    assert not key_enabled.evaluate(facts(secret_key=None)).allowed
    assert not key_not_expired.evaluate(facts(secret_key=None)).allowed
    assert not account_key_in_grace.evaluate(facts(account_key=None)).allowed
