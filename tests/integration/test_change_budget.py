"""The per-account budget of changes (``KEYLEDGER_CHANGES_PER_MINUTE``, review finding 4).

Past the budget a change through the API is answered 429 with ``Retry-After`` and
writes nothing; the count is kept on the Redis server's clock, shared by every web
process; idempotent replays, refused changes and the operator's changes do not count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from keyledger import create_app
from keyledger.bootstrap import Container, build
from keyledger.config import ConfigError, Settings
from keyledger.domain.events import OPERATOR
from tests.conftest import RunningProjector
from tests.integration.helpers import Bootstrapped, bootstrap

BUDGET = 5


@pytest.fixture
def budgeted(settings: Settings, redis_client: redis.Redis) -> Iterator[Container]:
    """A container whose accounts may make ``BUDGET`` changes a minute, with a projector."""
    container = build(dataclasses.replace(settings, changes_per_minute=BUDGET))
    with RunningProjector(container):
        yield container


def app_client(container: Container) -> FlaskClient:
    return create_app({"container": container, "TESTING": True}).test_client()


TARGET = "target-key-0001"


def with_target(container: Container, name: str = "Acme") -> Bootstrapped:
    """An account and a second key whose subnets the tests change (the operator's changes:
    they count for nothing)."""
    b = bootstrap(container, name)
    container.ledger.create_secret_key(b.account_id, TARGET, b.owner_id, (), OPERATOR)
    return b


@pytest.fixture
def acme(budgeted: Container) -> Bootstrapped:
    return with_target(budgeted)


def headers(b: Bootstrapped, **extra: str) -> dict[str, str]:
    return {"x-api-key": b.account_key, "x-api-secret-key": b.secret_key, **extra}


def add_subnet(client: FlaskClient, b: Bootstrapped, n: int, **extra: str) -> Any:
    return client.post(
        f"/v1/api-keys/{TARGET}/allowed-source-ips",
        headers=headers(b, **extra),
        json={"cidr": f"10.{n}.0.0/16"},
    )


def recorded(container: Container, b: Bootstrapped) -> tuple[int, int]:
    keys = container.keyspace
    return (
        container.store.version(b.account_id),
        int(container.redis.xlen(keys.log(keys.partition_of(b.account_id)))),
    )


def spend(client: FlaskClient, b: Bootstrapped, start: int = 0, count: int = BUDGET) -> None:
    for n in range(start, start + count):
        assert add_subnet(client, b, n).status_code == 200


def test_a_change_past_the_budget_is_a_429_with_retry_after_and_writes_nothing(
    budgeted: Container, acme: Bootstrapped
) -> None:
    client = app_client(budgeted)
    spend(client, acme)
    before = recorded(budgeted, acme)

    refused = add_subnet(client, acme, 99)

    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "too_many_changes"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert recorded(budgeted, acme) == before
    key = client.get(f"/v1/api-keys/{TARGET}", headers=headers(acme)).get_json()
    assert "10.99.0.0/16" not in key["allowedSourceIps"]
    user = client.post(
        "/v1/users",
        headers=headers(acme),
        json={"name": "Eve", "email": "e@x.io", "role": "Viewer"},
    )
    assert user.status_code == 429  # every kind of change, not only subnets
    assert recorded(budgeted, acme) == before


def test_the_budget_is_counted_on_the_redis_clock_and_resets_the_next_window(
    budgeted: Container, acme: Bootstrapped
) -> None:
    client = app_client(budgeted)
    spend(client, acme)
    assert add_subnet(client, acme, 50).status_code == 429
    counter = budgeted.keyspace.change_budget(acme.account_id)
    seconds, _ = budgeted.redis.time()
    assert budgeted.redis.hgetall(counter) == {"window": str(seconds // 60), "count": str(BUDGET)}
    assert 0 < budgeted.redis.pttl(counter) <= 61_000

    budgeted.redis.hset(counter, "window", str(seconds // 60 - 1))  # the minute is over

    assert add_subnet(client, acme, 50).status_code == 200
    assert budgeted.redis.hget(counter, "count") == "1"


def test_the_budget_is_shared_by_every_web_process(
    budgeted: Container, acme: Bootstrapped, settings: Settings
) -> None:
    other = build(dataclasses.replace(settings, changes_per_minute=BUDGET))  # own connections
    first, second = app_client(budgeted), app_client(other)
    for n in range(BUDGET):
        assert add_subnet(first if n % 2 else second, acme, n).status_code == 200
    assert add_subnet(first, acme, 98).status_code == 429
    assert add_subnet(second, acme, 99).status_code == 429


def test_each_account_has_its_own_budget(budgeted: Container, acme: Bootstrapped) -> None:
    client = app_client(budgeted)
    spend(client, acme)
    other = with_target(budgeted, "Other")
    spend(client, other)
    assert add_subnet(client, other, 99).status_code == 429


def test_an_idempotent_replay_does_not_count_again_and_is_served_past_the_budget(
    budgeted: Container, acme: Bootstrapped
) -> None:
    client = app_client(budgeted)
    first = add_subnet(client, acme, 0, **{"Idempotency-Key": "subnet-0"})
    for _ in range(3):
        replay = add_subnet(client, acme, 0, **{"Idempotency-Key": "subnet-0"})
        assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    spend(client, acme, start=1, count=BUDGET - 1)  # the first change was counted once
    assert add_subnet(client, acme, 99).status_code == 429

    replay = add_subnet(client, acme, 0, **{"Idempotency-Key": "subnet-0"})
    assert replay.status_code == 200 and replay.get_data() == first.get_data()


def test_a_refused_change_and_a_change_that_changes_nothing_do_not_count(
    budgeted: Container, acme: Bootstrapped
) -> None:
    client = app_client(budgeted)
    for _ in range(BUDGET + 2):
        bad = client.post(
            f"/v1/api-keys/{TARGET}/allowed-source-ips",
            headers=headers(acme),
            json={"cidr": "10.0.0.1/8"},
        )
        assert bad.status_code == 400
        same = client.put(
            f"/v1/users/{acme.owner_id}", headers=headers(acme), json={"role": "Owner"}
        )
        assert same.status_code == 200
    spend(client, acme)


def test_the_operator_is_never_counted_nor_refused(budgeted: Container, acme: Bootstrapped) -> None:
    client = app_client(budgeted)
    ledger = budgeted.ledger
    for n in range(BUDGET * 2):
        ledger.allow_subnet(acme.account_id, TARGET, f"10.{200 + n}.0.0/16", OPERATOR)
    spend(client, acme)  # the operator's changes took nothing from the account's budget
    assert add_subnet(client, acme, 99).status_code == 429

    outcome = ledger.disable_api(acme.account_id, OPERATOR)  # support can still act
    assert outcome.in_effect and not outcome.state.api_enabled


def test_zero_turns_the_budget_off(settings: Settings, redis_client: redis.Redis) -> None:
    container = build(dataclasses.replace(settings, changes_per_minute=0))
    with RunningProjector(container):
        b = with_target(container)
        spend(app_client(container), b, count=BUDGET * 4)
    assert not container.redis.exists(container.keyspace.change_budget(b.account_id))


def test_the_default_budget_is_a_hundred_changes_a_minute() -> None:
    assert Settings(redis_url="redis://unused").changes_per_minute == 100
    env = {"REDIS_URL": "redis://unused", "KEYLEDGER_CHANGES_PER_MINUTE": "0"}
    assert Settings.from_env(env).changes_per_minute == 0
    with pytest.raises(ConfigError):
        Settings.from_env({**env, "KEYLEDGER_CHANGES_PER_MINUTE": "-1"})
