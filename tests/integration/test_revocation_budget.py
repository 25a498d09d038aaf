"""Revocations draw on their own budget (``KEYLEDGER_REVOCATIONS_PER_MINUTE``, second review
finding A): a runaway or stolen Owner key that spends the account's budget of changes cannot
stop the legitimate Owner from deleting or disabling it, and the operator can disable or
delete one key from the command line, never refused by either budget.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from flask.testing import FlaskClient

from keyledger import create_app
from keyledger.bootstrap import Container, build
from keyledger.cli import main
from keyledger.config import ConfigError, Settings
from keyledger.domain.events import OPERATOR
from tests.conftest import RunningProjector
from tests.integration.helpers import Bootstrapped, bootstrap

CHANGES = 5
REVOCATIONS = 3
VICTIM = "victim-key-0001"


@pytest.fixture
def budgeted(settings: Settings, redis_client: redis.Redis) -> Iterator[Container]:
    container = build(
        dataclasses.replace(
            settings, changes_per_minute=CHANGES, revocations_per_minute=REVOCATIONS
        )
    )
    with RunningProjector(container):
        yield container


@pytest.fixture
def acme(budgeted: Container) -> Bootstrapped:
    """An account whose Owner key and a runaway key (``VICTIM``, also an Owner's) exist."""
    b = bootstrap(budgeted)
    for n in range(4):
        budgeted.ledger.create_secret_key(
            b.account_id, f"spare-key-000{n}", b.owner_id, (), OPERATOR
        )
    budgeted.ledger.create_secret_key(b.account_id, VICTIM, b.owner_id, (), OPERATOR)
    return b


def app_client(container: Container) -> FlaskClient:
    return create_app({"container": container, "TESTING": True}).test_client()


def headers(b: Bootstrapped) -> dict[str, str]:
    return {"x-api-key": b.account_key, "x-api-secret-key": b.secret_key}


def spend_changes(client: FlaskClient, b: Bootstrapped) -> None:
    """What the review did: PUT a key's description until the budget of changes is spent."""
    for n in range(CHANGES):
        put = client.put(
            f"/v1/api-keys/{VICTIM}", headers=headers(b), json={"description": f"runaway {n}"}
        )
        assert put.status_code == 200
    refused = client.put(f"/v1/api-keys/{VICTIM}", headers=headers(b), json={"description": "x"})
    assert refused.status_code == 429


def status(response: Any) -> int:
    return int(response.status_code)


def test_a_key_can_be_deleted_after_the_budget_of_changes_is_spent(
    budgeted: Container, acme: Bootstrapped
) -> None:
    client = app_client(budgeted)
    spend_changes(client, acme)

    assert status(client.delete(f"/v1/api-keys/{VICTIM}", headers=headers(acme))) == 204
    assert VICTIM not in budgeted.ledger.state(acme.account_id).keys


def test_a_key_can_be_disabled_after_the_budget_of_changes_is_spent(
    budgeted: Container, acme: Bootstrapped
) -> None:
    client = app_client(budgeted)
    spend_changes(client, acme)

    put = client.put(f"/v1/api-keys/{VICTIM}", headers=headers(acme), json={"enabled": False})

    assert put.status_code == 200 and put.get_json()["enabled"] is False


def test_a_user_can_be_removed_after_the_budget_of_changes_is_spent(
    budgeted: Container, acme: Bootstrapped
) -> None:
    user_id, _ = budgeted.ledger.add_user(acme.account_id, "Rex", "rex@x.io", "Owner", OPERATOR)
    client = app_client(budgeted)
    spend_changes(client, acme)

    assert status(client.delete(f"/v1/users/{user_id}", headers=headers(acme))) == 204


def test_a_put_that_disables_and_changes_more_is_a_change(
    budgeted: Container, acme: Bootstrapped
) -> None:
    client = app_client(budgeted)
    spend_changes(client, acme)

    mixed = client.put(
        f"/v1/api-keys/{VICTIM}",
        headers=headers(acme),
        json={"enabled": False, "description": "and more"},
    )

    assert mixed.status_code == 429
    assert budgeted.ledger.state(acme.account_id).key(VICTIM).enabled


def test_revocations_have_a_bounded_budget_of_their_own(
    budgeted: Container, acme: Bootstrapped
) -> None:
    client = app_client(budgeted)
    for n in range(REVOCATIONS):
        assert status(client.delete(f"/v1/api-keys/spare-key-000{n}", headers=headers(acme))) == 204
    version = budgeted.store.version(acme.account_id)

    refused = client.delete("/v1/api-keys/spare-key-0003", headers=headers(acme))

    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "too_many_changes"
    assert "revocations" in refused.get_json()["error"]["description"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert budgeted.store.version(acme.account_id) == version
    counter = budgeted.keyspace.revocation_budget(acme.account_id)
    assert budgeted.redis.hget(counter, "count") == str(REVOCATIONS)
    # ... and the revocations took nothing from the budget of changes.
    assert not budgeted.redis.exists(budgeted.keyspace.change_budget(acme.account_id))
    spend_changes(client, acme)


def test_the_operator_disables_and_deletes_one_key_from_the_command_line(
    budgeted: Container, acme: Bootstrapped, monkeypatch: pytest.MonkeyPatch
) -> None:
    spend_changes(app_client(budgeted), acme)
    for n in range(REVOCATIONS):  # both budgets spent
        app_client(budgeted).delete(f"/v1/api-keys/spare-key-000{n}", headers=headers(acme))
    monkeypatch.setenv("REDIS_URL", budgeted.settings.redis_url)
    monkeypatch.setenv("KEYLEDGER_NAMESPACE", budgeted.settings.namespace)
    monkeypatch.setenv("KEYLEDGER_PARTITIONS", str(budgeted.settings.partitions))
    runner = CliRunner()

    def cli(*args: str) -> tuple[int, dict[str, Any]]:
        result = runner.invoke(main, [*args, "--account", acme.account_id, "--json"])
        return result.exit_code, json.loads(result.stdout)

    code, disabled = cli("key", "disable", "--name", VICTIM)
    assert code == 0 and disabled == {
        "accountId": acme.account_id,
        "name": VICTIM,
        "enabled": False,
    }
    assert not budgeted.ledger.state(acme.account_id).key(VICTIM).enabled
    code, deleted = cli("key", "delete", "--name", VICTIM)
    assert code == 0 and deleted["deleted"] is True
    assert VICTIM not in budgeted.ledger.state(acme.account_id).keys
    code, missing = cli("key", "delete", "--name", VICTIM)
    assert code == 1 and missing["error"]["code"] == "not_found"

    history = [s.event for s in budgeted.store.iter_account(acme.account_id)][-2:]
    assert [type(e).__name__ for e in history] == ["SecretKeyDisabled", "SecretKeyDeleted"]
    assert all(e.actor == OPERATOR for e in history)


def test_the_default_budget_of_revocations_is_a_hundred_a_minute() -> None:
    assert Settings(redis_url="redis://unused").revocations_per_minute == 100
    env = {"REDIS_URL": "redis://unused", "KEYLEDGER_REVOCATIONS_PER_MINUTE": "0"}
    assert Settings.from_env(env).revocations_per_minute == 0
    with pytest.raises(ConfigError):
        Settings.from_env({**env, "KEYLEDGER_REVOCATIONS_PER_MINUTE": "-1"})
