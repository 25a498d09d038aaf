"""The application service with a running projector: changes take effect at once."""

from __future__ import annotations

import pytest

from keyledger.bootstrap import Container
from keyledger.domain import commands as cmd
from keyledger.domain.account import Recorder
from keyledger.domain.decisions import decide
from keyledger.domain.errors import ConcurrencyConflict, Conflict, NotFound
from keyledger.domain.events import OPERATOR
from tests.integration.helpers import bootstrap


def authenticate(container: Container, account_key: str, secret_key: str, **kw: str):
    return container.authenticator.authenticate(
        method=kw.get("method", "GET"),
        path=kw.get("path", "/v1/"),
        source_ip=kw.get("source_ip", "127.0.0.1"),
        account_key=account_key,
        secret_key=secret_key,
    )


def test_a_change_is_in_effect_when_the_call_returns(container: Container, projector) -> None:
    b = bootstrap(container)
    assert authenticate(container, b.account_key, b.secret_key).allowed
    outcome = container.ledger.delete_secret_key(b.account_id, b.key_name, OPERATOR)
    assert outcome.in_effect
    result = authenticate(container, b.account_key, b.secret_key)
    assert not result.allowed
    assert result.decision.policy == "secret_key_valid"


def test_without_a_projector_the_change_is_recorded_but_not_in_effect(container: Container) -> None:
    container.ledger.apply_timeout = 0.2
    account_id, _, outcome = container.ledger.register_account(
        "Acme", "Ann", "ann@example.com", OPERATOR
    )
    assert not outcome.in_effect
    assert container.store.version(account_id) == 2


def test_argon2_runs_once_per_key_and_process(container: Container, projector) -> None:
    b = bootstrap(container)
    before = container.hasher.argon2_verifications
    for _ in range(5):
        assert authenticate(container, b.account_key, b.secret_key).allowed
    assert container.hasher.argon2_verifications - before == 2  # account key + secret key


def test_rotated_account_key_is_refused_even_when_remembered(
    container: Container, projector
) -> None:
    b = bootstrap(container)
    assert authenticate(container, b.account_key, b.secret_key).allowed
    new_key, _ = container.ledger.rotate_account_key(b.account_id, OPERATOR)
    assert not authenticate(container, b.account_key, b.secret_key).allowed
    assert authenticate(container, new_key, b.secret_key).allowed


def test_malformed_keys_are_refused_without_touching_redis(container: Container) -> None:
    container.authenticator.lookup.client = None  # type: ignore[assignment]
    result = authenticate(container, "klak_nonsense", "klsk_nonsense")
    assert result.decision.policy == "credentials_present"


def test_stale_state_cannot_overwrite_a_concurrent_change(container: Container, projector) -> None:
    b = bootstrap(container)
    stale = container.ledger.state(b.account_id)
    container.ledger.create_secret_key(b.account_id, "first-key-0001", b.owner_id, (), OPERATOR)
    events = decide(
        stale,
        cmd.DeleteSecretKey(account_id=b.account_id, name=b.key_name),
        Recorder(stale, container.ledger.clock(), OPERATOR),
        container.settings.limits,
    )
    with pytest.raises(ConcurrencyConflict):
        container.store.append(b.account_id, stale.version, events)


def test_state_is_folded_incrementally_and_stays_current(container: Container, projector) -> None:
    b = bootstrap(container)
    ledger = container.ledger
    assert b.key_name in ledger.state(b.account_id).keys
    ledger.delete_secret_key(b.account_id, b.key_name, OPERATOR)
    assert b.key_name not in ledger.state(b.account_id).keys
    with pytest.raises(NotFound):
        ledger.delete_secret_key(b.account_id, b.key_name, OPERATOR)


def test_enabling_twice_is_a_conflict(container: Container, projector) -> None:
    b = bootstrap(container)
    with pytest.raises(Conflict):
        container.ledger.enable_api(b.account_id, OPERATOR)
