"""The event log on a real Redis: atomic, versioned, partitioned appends."""

from __future__ import annotations

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
