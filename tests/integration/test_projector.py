"""The projector on a real Redis: idempotent, checkpointed, halting on poison."""

from __future__ import annotations

import redis

from keyledger.bootstrap import Container
from keyledger.domain.events import OPERATOR
from keyledger.workers.projector import Projector
from tests.integration.helpers import bootstrap


def snapshot(client: redis.Redis, namespace: str) -> dict[str, object]:
    """Every projection key of the namespace with its value (the log itself excluded)."""
    state: dict[str, object] = {}
    for key in sorted(client.scan_iter(match=f"{namespace}:*")):
        kind = client.type(key)
        if key.endswith((":log", ":events", ":head", ":logged")):  # written by the append
            continue
        if kind == "hash":
            state[key] = client.hgetall(key)
        elif kind == "set":
            state[key] = sorted(client.smembers(key))
        elif kind == "string":
            state[key] = client.get(key)
        elif kind == "zset":
            state[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            state[key] = client.xrange(key)
        else:
            raise AssertionError(f"{key} is a {kind}: teach snapshot() to compare it")
    return state


def make_projector(container: Container, consumer: str = "p1") -> Projector:
    client = redis.Redis.from_url(container.settings.redis_url, decode_responses=True)
    projector = Projector(client, container.keyspace, consumer=consumer, block_ms=10)
    projector.setup()
    return projector


def drain(projector: Projector) -> int:
    total = 0
    while (done := projector.step()) > 0:
        total += done
    return total


def history(container: Container) -> None:
    b = bootstrap(container)
    ledger = container.ledger
    user_id, _ = ledger.add_user(b.account_id, "Vic Viewer", "vic@example.com", "Viewer", OPERATOR)
    ledger.create_secret_key(b.account_id, "viewer-key-001", user_id, ("10.0.0.0/8",), OPERATOR)
    ledger.allow_subnet(b.account_id, "viewer-key-001", "192.168.0.0/16", OPERATOR)
    ledger.update_user(b.account_id, user_id, None, "Owner", OPERATOR)
    ledger.remove_subnet(b.account_id, "viewer-key-001", "10.0.0.0/8", OPERATOR)


def test_projects_every_event_and_checkpoints(
    container: Container, redis_client, namespace
) -> None:
    container.ledger.apply_timeout = 0.0
    history(container)
    projector = make_projector(container)
    applied = drain(projector)
    assert applied == projector.applied > 0
    for partition in range(container.keyspace.partitions):
        pending = redis_client.xpending(container.keyspace.log(partition), "projector")
        assert pending["pending"] == 0


def test_replaying_the_log_changes_nothing(container: Container, redis_client, namespace) -> None:
    container.ledger.apply_timeout = 0.0
    history(container)
    projector = make_projector(container)
    drain(projector)
    before = snapshot(redis_client, namespace)
    for partition in range(container.keyspace.partitions):
        entries = [(s.entry_id, s.record) for s in container.store.read_log(partition)]
        if entries:
            assert projector.apply_entries(partition, entries) == 0
    assert snapshot(redis_client, namespace) == before


def deliver_without_applying(redis_client, container: Container, consumer: str) -> None:
    """What a consumer that reads a batch and dies before applying it leaves behind."""
    keys = container.keyspace
    for partition in range(keys.partitions):
        redis_client.xreadgroup("projector", consumer, {keys.log(partition): ">"}, count=1000)


def pending_total(redis_client, container: Container) -> int:
    keys = container.keyspace
    return sum(
        redis_client.xpending(keys.log(p), "projector")["pending"] for p in range(keys.partitions)
    )


def test_entries_read_by_a_dead_consumer_are_applied_by_a_new_one(
    container: Container, redis_client
) -> None:
    container.ledger.apply_timeout = 0.0
    make_projector(container, consumer="dead")
    b = bootstrap(container)
    deliver_without_applying(redis_client, container, "dead")
    container.ledger.delete_secret_key(b.account_id, b.key_name, OPERATOR)
    survivor = make_projector(container, consumer="new-name")
    drain(survivor)
    key_id = container.ledger.state(b.account_id).account_key_id
    assert redis_client.hget(container.keyspace.auth_account(b.account_id), "api") == "1"
    assert key_id is not None
    assert not any(
        redis_client.hget(k, "name") == b.key_name
        for k in redis_client.scan_iter(match=f"{container.keyspace.namespace}:*:auth:key:*")
        if redis_client.type(k) == "hash"
    )


def test_pending_entries_of_a_dead_consumer_are_claimed_and_settled(
    container: Container, redis_client
) -> None:
    container.ledger.apply_timeout = 0.0
    make_projector(container, consumer="dead")
    bootstrap(container)
    deliver_without_applying(redis_client, container, "dead")
    assert pending_total(redis_client, container) > 0
    survivor = make_projector(container, consumer="survivor")
    survivor.recover(min_idle_ms=0)
    assert pending_total(redis_client, container) == 0
    assert survivor.applied > 0


def test_two_projectors_apply_each_entry_once_in_order(
    container: Container, redis_client, namespace
) -> None:
    container.ledger.apply_timeout = 0.0
    first, second = make_projector(container, "one"), make_projector(container, "two")
    history(container)
    while first.step() + second.step() > 0:
        pass
    assert first.applied + second.applied == sum(
        len(container.store.read_log(p)) for p in range(container.keyspace.partitions)
    )
    reference = snapshot(redis_client, namespace)
    for partition in range(container.keyspace.partitions):
        entries = [(s.entry_id, s.record) for s in container.store.read_log(partition)]
        assert first.apply_entries(partition, entries) == 0
    assert snapshot(redis_client, namespace) == reference


def test_a_corrupt_entry_halts_its_partition_and_stays_pending(
    container: Container, redis_client, namespace
) -> None:
    container.ledger.apply_timeout = 0.0
    b = bootstrap(container)
    keys = container.keyspace
    partition = keys.partition_of(b.account_id)
    redis_client.xadd(keys.log(partition), {"type": "Nonsense", "data": "{"})
    projector = make_projector(container)
    drain(projector)
    assert partition in projector.halted
    pending = redis_client.xpending(keys.log(partition), "projector")
    assert pending["pending"] == 1
    # What came before the poison entry was applied.
    assert redis_client.hget(keys.auth_account(b.account_id), "api") == "1"
    # Later entries of that partition are not applied past the poison one.
    container.ledger.disable_api(b.account_id, OPERATOR)
    drain(projector)
    assert redis_client.hget(keys.auth_account(b.account_id), "api") == "1"


def poison(redis_client, container: Container, account_id: str) -> tuple[int, str]:
    keys = container.keyspace
    partition = keys.partition_of(account_id)
    entry_id = redis_client.xadd(keys.log(partition), {"type": "Nonsense", "data": "{"})
    return partition, entry_id


def test_a_poison_entry_is_parked_once_with_its_error(container: Container, redis_client) -> None:
    container.ledger.apply_timeout = 0.0
    b = bootstrap(container)
    partition, entry_id = poison(redis_client, container, b.account_id)
    first, second = make_projector(container, "one"), make_projector(container, "two")
    drain(first)
    drain(second)
    parked = redis_client.xrange(container.keyspace.dead_letters(partition))
    assert len(parked) == 1
    assert parked[0][1]["entry"] == entry_id
    assert "CorruptEvent" in parked[0][1]["error"]
    assert partition in second.halted  # the halt is shared through Redis


def test_every_projector_stops_at_a_halted_partition(container: Container, redis_client) -> None:
    container.ledger.apply_timeout = 0.0
    b = bootstrap(container)
    poison(redis_client, container, b.account_id)
    drain(make_projector(container, "one"))
    container.ledger.disable_api(b.account_id, OPERATOR)
    drain(make_projector(container, "another"))
    assert redis_client.hget(container.keyspace.auth_account(b.account_id), "api") == "1"


def test_a_failing_projection_write_halts_the_partition_instead_of_killing_the_projector(
    container: Container, redis_client
) -> None:
    container.ledger.apply_timeout = 0.0
    b = bootstrap(container)
    projector = make_projector(container)
    drain(projector)
    damaged = container.keyspace.auth_user(b.account_id, b.owner_id)
    redis_client.delete(damaged)
    redis_client.rpush(damaged, "not a hash")  # WRONGTYPE for the next HSET
    container.ledger.update_user(b.account_id, b.owner_id, "Renamed", None, OPERATOR)
    drain(projector)  # must not raise
    partition = container.keyspace.partition_of(b.account_id)
    assert partition in projector.halted
    parked = redis_client.xrange(container.keyspace.dead_letters(partition))
    assert "rebuild" in parked[0][1]["error"]
