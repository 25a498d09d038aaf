"""The event store's Lua append against fakeredis: the script's rules without a server.

The integration tests run the same adapter against a real Redis; this keeps the
optimistic-concurrency and chaining rules checkable where no server runs.
"""

from __future__ import annotations

from datetime import UTC, datetime

import fakeredis
import pytest

from keyledger.adapters.eventstore import EventStore
from keyledger.adapters.keyspace import Keyspace
from keyledger.domain import events as ev
from keyledger.domain.errors import ConcurrencyConflict

NOW = datetime(2026, 1, 2, tzinfo=UTC)


def event(version: int) -> ev.Event:
    if version == 1:
        return ev.AccountRegistered(
            account_id="acc", version=1, time=NOW, actor=ev.OPERATOR, name="A", owner_user_id="u"
        )
    return ev.ApiEnabled(account_id="acc", version=version, time=NOW, actor=ev.OPERATOR)


@pytest.fixture
def store() -> EventStore:
    return EventStore(fakeredis.FakeRedis(decode_responses=True), Keyspace("kl", 4))


def test_appends_extend_both_streams_and_the_head(store: EventStore) -> None:
    appended = store.append("acc", 0, [event(1), event(2)])
    assert store.version("acc") == 2
    assert len(appended.log_entry_ids) == 2
    assert [s.event.version for s in store.read_account("acc")] == [1, 2]


def test_a_stale_version_is_refused_and_writes_nothing(store: EventStore) -> None:
    store.append("acc", 0, [event(1)])
    with pytest.raises(ConcurrencyConflict):
        store.append("acc", 0, [event(1)])
    assert len(store.read_account("acc")) == 1


def test_each_record_chains_to_its_predecessor(store: EventStore) -> None:
    store.append("acc", 0, [event(1), event(2), event(3)])
    records = [s.record for s in store.read_account("acc")]
    assert records[0]["prev"] == "0" * 64
    assert [r["prev"] for r in records[1:]] == [r["hash"] for r in records[:-1]]
