"""The event log on a real Redis: atomic, versioned, partitioned appends."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest
import redis

from keyledger.adapters.eventstore import EventStore
from keyledger.adapters.keyspace import Keyspace
from keyledger.domain import events as ev
from keyledger.domain.errors import ConcurrencyConflict

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def registered(account_id: str, version: int = 1) -> ev.Event:
    return ev.AccountRegistered(
        account_id=account_id,
        version=version,
        time=NOW,
        actor=ev.OPERATOR,
        name="A",
        owner_user_id="u1",
    )


def enabled(account_id: str, version: int) -> ev.Event:
    return ev.ApiEnabled(account_id=account_id, version=version, time=NOW, actor=ev.OPERATOR)


@pytest.fixture
def store(redis_client: redis.Redis, namespace: str) -> EventStore:
    return EventStore(redis_client, Keyspace(namespace, 4))


def test_append_writes_account_stream_and_partition_log(store: EventStore) -> None:
    appended = store.append("acc1", 0, [registered("acc1"), enabled("acc1", 2)])
    assert [s.event for s in store.read_account("acc1")] == [registered("acc1"), enabled("acc1", 2)]
    log = store.read_log(appended.partition)
    assert [s.entry_id for s in log] == list(appended.log_entry_ids)
    assert store.version("acc1") == 2


def test_append_with_stale_version_is_a_conflict_and_writes_nothing(store: EventStore) -> None:
    store.append("acc1", 0, [registered("acc1")])
    with pytest.raises(ConcurrencyConflict):
        store.append("acc1", 0, [registered("acc1")])
    assert store.version("acc1") == 1
    assert len(store.read_account("acc1")) == 1
    assert len(store.read_log(store.keys.partition_of("acc1"))) == 1


def test_events_must_continue_the_version_sequence(store: EventStore) -> None:
    with pytest.raises(ValueError):
        store.append("acc1", 0, [enabled("acc1", 5)])
    assert store.version("acc1") == 0


def test_every_key_of_an_append_shares_one_hash_slot(store: EventStore) -> None:
    keys = store.keys
    names = [
        keys.account_events("acc9"),
        keys.log(keys.partition_of("acc9")),
        keys.account_head("acc9"),
    ]
    tags = {name[name.index("{") : name.index("}") + 1] for name in names}
    assert len(tags) == 1


def test_accounts_spread_over_partitions(store: EventStore) -> None:
    partitions = {store.keys.partition_of(f"account-{i}") for i in range(100)}
    assert partitions == {0, 1, 2, 3}


def test_reading_after_an_entry_id_returns_only_newer_events(store: EventStore) -> None:
    appended = store.append("acc1", 0, [registered("acc1"), enabled("acc1", 2)])
    newer = store.read_account("acc1", after=appended.account_entry_ids[0])
    assert [s.event.version for s in newer] == [2]


def test_log_is_never_trimmed_by_appends(store: EventStore, redis_client: redis.Redis) -> None:
    store.append("acc1", 0, [registered("acc1")])
    for version in range(2, 202):
        store.append("acc1", version - 1, [enabled("acc1", version)])
    assert redis_client.xlen(store.keys.account_events("acc1")) == 201


# -- finding a version without reading the history before it -------------------------------
def appended_in_bursts(store: EventStore, account_id: str, rng_seed: int = 5) -> int:
    """Appends of 1 to 40 events, some in the same millisecond: many entries share one."""
    rng = random.Random(rng_seed)
    store.append(account_id, 0, [registered(account_id)])
    version = 1
    while version < 400:
        size = rng.choice([1, 1, 2, 7, 40])
        store.append(
            account_id, version, [enabled(account_id, version + i + 1) for i in range(size)]
        )
        version += size
        if rng.random() < 0.2:
            time.sleep(0.002)
    return version


def test_reading_after_any_version_gives_the_events_that_follow_it(store: EventStore) -> None:
    head = appended_in_bursts(store, "acc1")
    everything = store.read_account("acc1", count=10_000)
    for after in range(head + 3):
        page = store.read_after_version("acc1", after, 3)
        assert page == [s for s in everything if int(s.record["version"]) > after][:3], after


def handmade(store: EventStore, account_id: str, ids: list[str], versions: list[int]) -> None:
    """An account stream with chosen entry ids (as a restore or a tamperer could leave it)."""
    key = store.keys.account_events(account_id)
    for entry_id, version in zip(ids, versions, strict=True):
        store.client.xadd(key, {"type": "ApiEnabled", "version": str(version)}, id=entry_id)
    store.client.hset(store.keys.account_head(account_id), "version", str(max(versions)))


def test_the_version_is_found_across_far_apart_milliseconds_and_long_sequences(
    store: EventStore,
) -> None:
    ids = ["1-0", "5-0", "5-1", "5-2", "9000000000-7"]
    ids += [f"1795848543886-{seq}" for seq in range(0, 3000, 3)]
    ids += ["1795848543887-0", "4102444800000-18446744073"]
    handmade(store, "acc1", ids, list(range(1, len(ids) + 1)))
    for after in [0, 1, 2, 3, 4, 5, 6, 500, 1003, 1004, len(ids) - 1, len(ids)]:
        page = store.read_after_version("acc1", after, 2)
        assert [int(s.record["version"]) for s in page] == [
            v for v in range(after + 1, len(ids) + 1)
        ][:2]
        assert [s.entry_id for s in page] == ids[after : after + 2]


def test_a_stream_whose_versions_are_not_contiguous_is_read_in_order_instead(
    store: EventStore,
) -> None:
    handmade(store, "acc1", ["1-0", "2-0", "3-0", "4-0", "5-0"], [1, 2, 4, 5, 6])  # 3 deleted
    assert [int(s.record["version"]) for s in store.read_after_version("acc1", 2, 2)] == [4, 5]
    assert [int(s.record["version"]) for s in store.read_after_version("acc1", 4, 5)] == [5, 6]


def test_reading_after_the_head_or_of_an_unknown_account_is_empty(store: EventStore) -> None:
    store.append("acc1", 0, [registered("acc1"), enabled("acc1", 2)])
    assert store.read_after_version("acc1", 2, 5) == []
    assert store.read_after_version("acc1", 2**53, 5) == []
    assert store.read_after_version("nobody", 0, 5) == []
