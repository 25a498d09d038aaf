"""One account's verification costs what its own history holds (second review, finding B).

``GET /v1/audit/verify`` used to page through the whole partition log, other tenants'
history included. The reads are counted at the connection (every stream entry a reply
carries), not timed. Every tampering is still named when one account is verified, and
history older than the log index is checked the long way once, then indexed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from keyledger.adapters.audit import ChainAuditor
from keyledger.adapters.eventstore import EventStore
from keyledger.bootstrap import Container
from keyledger.domain import commands as cmd
from keyledger.domain.chain import chained, link_hash
from keyledger.domain.events import OPERATOR
from tests.conftest import RunningProjector
from tests.integration.helpers import Bootstrapped, bootstrap

STREAM_ID = re.compile(r"[0-9]+-[0-9]+")
NEIGHBOUR_EVENTS = 400


class CountingConnection(redis.Connection):
    """Counts the stream entries (``[id, [field, value, ...]]``) in every reply it reads,
    pipelined or not: what XRANGE and XREVRANGE return."""

    entries = 0

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        reply = super().read_response(*args, **kwargs)
        if isinstance(reply, list) and reply and all(is_entry(item) for item in reply):
            CountingConnection.entries += len(reply)
        return reply


def is_entry(item: Any) -> bool:
    return (
        isinstance(item, list | tuple)
        and len(item) == 2
        and isinstance(item[0], str)
        and STREAM_ID.fullmatch(item[0]) is not None
        and isinstance(item[1], list | dict)
    )


@pytest.fixture
def running(container: Container) -> Iterator[Container]:
    with RunningProjector(container):
        yield container


def counting_auditor(container: Container) -> ChainAuditor:
    client = redis.Redis.from_url(
        container.settings.redis_url, decode_responses=True, connection_class=CountingConnection
    )
    return ChainAuditor(EventStore(client, container.keyspace))


def reads(auditor: ChainAuditor, account_id: str | None) -> tuple[int, dict[str, Any]]:
    CountingConnection.entries = 0
    report = auditor.verify(account_id)
    return CountingConnection.entries, report.as_dict()


def neighbour_of(container: Container, account_id: str) -> Bootstrapped:
    """Another account in the same partition, with a long history."""
    keys = container.keyspace
    while True:
        other = bootstrap(container, "Busy neighbour")
        if keys.partition_of(other.account_id) == keys.partition_of(account_id):
            break
    for n in range(NEIGHBOUR_EVENTS):
        container.ledger.update_secret_key(
            cmd.UpdateSecretKey(
                account_id=other.account_id, name=other.key_name, description=f"change {n}"
            ),
            OPERATOR,
        )
    return other


def test_verifying_one_account_reads_its_own_entries_not_its_neighbours(
    running: Container,
) -> None:
    acme = bootstrap(running)
    neighbour_of(running, acme.account_id)
    auditor = counting_auditor(running)
    events = running.store.version(acme.account_id)

    own, report = reads(auditor, acme.account_id)
    whole, _ = reads(auditor, None)

    assert report["ok"] is True and report["events"] == events == 5
    assert report["logEntries"] == events
    assert own <= 4 * events  # its stream, its log entries by id, the unprojected tail
    assert whole > NEIGHBOUR_EVENTS  # the counter sees what a partition pass reads


def test_history_older_than_the_log_index_is_checked_the_long_way_once_then_indexed(
    running: Container,
) -> None:
    acme = bootstrap(running)
    neighbour_of(running, acme.account_id)
    index = running.keyspace.log_index(acme.account_id)
    indexed = running.redis.hgetall(index)
    running.redis.delete(index)  # as an account recorded before the index existed
    auditor = counting_auditor(running)

    first, report = reads(auditor, acme.account_id)
    second, again = reads(auditor, acme.account_id)

    assert report == again and report["ok"] is True
    assert first > NEIGHBOUR_EVENTS and second <= 4 * 5
    assert running.redis.hgetall(index) == indexed


# -- every tampering is still named for one account ------------------------------------------


@pytest.fixture
def quick(container: Container) -> Container:
    """No projector: the tests rewrite the partition log, consumer group and all."""
    container.ledger.apply_timeout = 0.0
    return container


def seven_events(container: Container) -> Bootstrapped:
    b = bootstrap(container)
    container.ledger.create_secret_key(b.account_id, "second-key-01", b.owner_id, (), OPERATOR)
    container.ledger.allow_subnet(b.account_id, "second-key-01", "10.2.5.0/24", OPERATOR)
    return b


@pytest.fixture
def acme(quick: Container) -> Bootstrapped:
    return seven_events(quick)


def log_entry(container: Container, b: Bootstrapped, version: int) -> tuple[str, dict[str, str]]:
    key = container.keyspace.log(container.keyspace.partition_of(b.account_id))
    return next(
        (entry_id, fields)
        for entry_id, fields in container.redis.xrange(key)
        if fields["account"] == b.account_id and fields["version"] == str(version)
    )


def rewrite_log(container: Container, b: Bootstrapped, change: Any) -> None:
    key = container.keyspace.log(container.keyspace.partition_of(b.account_id))
    entries = change([(i, dict(f)) for i, f in container.redis.xrange(key)])
    container.redis.delete(key)
    for entry_id, fields in entries:
        container.redis.xadd(key, fields, id=entry_id)


def first_break(container: Container, b: Bootstrapped) -> dict[str, Any]:
    report = ChainAuditor(container.store).verify(b.account_id)
    assert report.first is not None, "tampering went unnoticed"
    return report.first.as_dict()


def test_a_change_recorded_while_the_account_is_verified_is_no_insertion(
    quick: Container, acme: Bootstrapped, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log index is read before the account's stream; a change recorded in between
    is in the log but not in that read (review of the one-account check)."""
    auditor = ChainAuditor(quick.store)
    looked_for = auditor._inserted

    def a_change_lands_first(*args: Any) -> Any:
        quick.ledger.update_user(acme.account_id, acme.owner_id, "Ann Busy", None, OPERATOR)
        return looked_for(*args)

    monkeypatch.setattr(auditor, "_inserted", a_change_lands_first)
    report = auditor.verify(acme.account_id)
    assert report.first is None, report.first


def test_a_log_entry_edited_is_named(quick: Container, acme: Bootstrapped) -> None:
    target, _ = log_entry(quick, acme, 6)

    def edit(entries: list[tuple[str, dict[str, str]]]) -> list[tuple[str, dict[str, str]]]:
        for entry_id, fields in entries:
            if entry_id == target:
                fields["data"] = fields["data"].replace("second", "switched")
        return entries

    rewrite_log(quick, acme, edit)
    found = first_break(quick, acme)
    assert (found["version"], found["entryId"], found["stream"]) == (6, target, "log")
    assert "edited" in found["reason"]


def test_a_log_entry_rehashed_is_named(quick: Container, acme: Bootstrapped) -> None:
    target, _ = log_entry(quick, acme, 7)

    def edit(entries: list[tuple[str, dict[str, str]]]) -> list[tuple[str, dict[str, str]]]:
        for entry_id, fields in entries:
            if entry_id == target:
                fields["data"] = fields["data"].replace("10.2.5.0/24", "0.0.0.0/0")
                fields["hash"] = link_hash(fields["prev"], fields)
        return entries

    rewrite_log(quick, acme, edit)
    found = first_break(quick, acme)
    assert (found["version"], found["entryId"]) == (7, target)
    assert "differs from version 7 of the account stream" in found["reason"]


def test_a_log_entry_deleted_is_named(quick: Container, acme: Bootstrapped) -> None:
    key = quick.keyspace.log(quick.keyspace.partition_of(acme.account_id))
    quick.redis.xdel(key, log_entry(quick, acme, 3)[0])
    found = first_break(quick, acme)
    assert (found["version"], found["stream"]) == (3, "log")
    assert "missing from the" in found["reason"]


def test_log_entries_swapped_are_named(quick: Container, acme: Bootstrapped) -> None:
    (four, _), (five, _) = log_entry(quick, acme, 4), log_entry(quick, acme, 5)

    def swap(entries: list[tuple[str, dict[str, str]]]) -> list[tuple[str, dict[str, str]]]:
        by_id = dict(entries)
        by_id[four], by_id[five] = by_id[five], by_id[four]
        return [(entry_id, by_id[entry_id]) for entry_id, _ in entries]

    rewrite_log(quick, acme, swap)
    found = first_break(quick, acme)
    assert (found["version"], found["entryId"], found["stream"]) == (4, four, "log")


def test_a_log_entry_inserted_and_projected_is_named(running: Container) -> None:
    acme = seven_events(running)
    _, last = log_entry(running, acme, 7)
    template = {k: v for k, v in last.items() if k not in ("prev", "hash")}
    data = template["data"].replace("10.2.5.0/24", "0.0.0.0/0")
    [forged] = chained([{**template, "version": "8", "data": data}], last["hash"])
    key = running.keyspace.log(running.keyspace.partition_of(acme.account_id))
    inserted = running.redis.xadd(key, forged)
    partition = running.keyspace.partition_of(acme.account_id)
    checkpoint = running.keyspace.checkpoint("syslog", partition)
    deadline = time.monotonic() + 10
    while running.redis.get(checkpoint) != inserted:  # the projector applies it
        assert time.monotonic() < deadline, "the projector did not apply the entry"
        time.sleep(0.02)
    assert running.redis.zscore(running.keyspace.syslog_index(acme.account_id), inserted) == 8

    found = first_break(running, acme)

    assert (found["version"], found["entryId"], found["stream"]) == (8, inserted, "log")
    assert "inserted" in found["reason"]


def test_a_log_entry_inserted_not_yet_projected_is_named(
    container: Container,
) -> None:
    container.ledger.apply_timeout = 0.0  # no projector: nothing is applied
    acme = bootstrap(container)
    _, last = log_entry(container, acme, 5)
    template = {k: v for k, v in last.items() if k not in ("prev", "hash")}
    [forged] = chained([{**template, "version": "6"}], last["hash"])
    key = container.keyspace.log(container.keyspace.partition_of(acme.account_id))
    inserted = container.redis.xadd(key, forged)
    found = first_break(container, acme)
    assert (found["version"], found["entryId"], found["stream"]) == (6, inserted, "log")
    assert "inserted" in found["reason"]
