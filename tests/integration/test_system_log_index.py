"""The system-log index gives the pages a scan of the log would give, live and rebuilt.

The reference is the plainest reading of the projection: every entry of the account's
stream in the time range, newest first, filtered by resource, then sliced.
"""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keyledger.adapters.systemlog import LAST_SEQUENCE, LogPage, _ms
from keyledger.bootstrap import Container
from keyledger.workers.rebuild import Rebuilder
from tests.integration.test_projector import snapshot
from tests.integration.test_rebuild import random_history, wait_until_applied

ODD_RESOURCES = ["nomatch", "a:b", "{p00}", "x}:{y", "%41", "ü", "key name", "-"]


def moment(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def reference(
    container: Container,
    account_id: str,
    offset: int,
    limit: int,
    start: datetime | None = None,
    end: datetime | None = None,
    resource_id: str | None = None,
) -> LogPage:
    upper = f"{_ms(end)}-{LAST_SEQUENCE}" if end else "+"
    lower = f"{_ms(start)}-0" if start else "-"
    stream = container.keyspace.syslog(account_id)
    entries = [
        json.loads(fields["entry"])
        for _, fields in container.redis.xrevrange(stream, max=upper, min=lower)
    ]
    if resource_id is not None:
        entries = [e for e in entries if e["resourceId"] == resource_id]
    return LogPage(entries[offset : offset + limit], len(entries) > offset + limit)


def queries(container: Container, account_id: str, rng: random.Random) -> list[dict[str, Any]]:
    """Offsets, limits, resources and time bounds, the bounds taken from the entry ids."""
    stream = container.keyspace.syslog(account_id)
    ids = [entry_id for entry_id, _ in container.redis.xrange(stream)]
    times = sorted({int(i.split("-")[0]) for i in ids})
    resources = sorted(
        {json.loads(f["entry"])["resourceId"] for _, f in container.redis.xrange(stream)}
    )
    found: list[dict[str, Any]] = []
    for ms in rng.sample(times, min(8, len(times))):  # whole ranges, up to and from a bound
        for resource_id in (None, rng.choice(resources)):
            for bounds in ({"start": moment(ms)}, {"end": moment(ms)}):
                found.append({"offset": 0, "limit": 1000, "resource_id": resource_id, **bounds})
    for _ in range(60):
        start = moment(rng.choice(times)) if rng.random() < 0.4 else None
        end = moment(rng.choice(times)) if rng.random() < 0.4 else None
        found.append(
            {
                "offset": rng.choice([0, 0, 1, 3, 17, len(ids) // 2, len(ids), len(ids) + 5]),
                "limit": rng.choice([1, 2, 5, 50, 1000]),
                "start": start,
                "end": end,
                "resource_id": rng.choice([None, None, *resources, *ODD_RESOURCES]),
            }
        )
    return found


def assert_pages_match_the_reference(container: Container, accounts: list[str], seed: int) -> int:
    rng, checked = random.Random(seed), 0
    for account_id in accounts:
        for query in queries(container, account_id, rng):
            indexed = container.system_log.page(account_id, **query)
            assert indexed == reference(container, account_id, **query), query
            checked += len(indexed.entries)
    return checked


@pytest.fixture
def history(container: Container, projector) -> list[str]:  # type: ignore[no-untyped-def]
    container.ledger.apply_timeout = 0.0
    random_history(container, random.Random(23), changes=700, accounts=3)
    wait_until_applied(container)
    return sorted(
        key.split(":acct:")[1].removesuffix(":syslog")
        for key in container.redis.scan_iter(match=f"{container.settings.namespace}:*:syslog")
    )


def test_indexed_pages_are_the_pages_a_scan_gives(container: Container, history: list[str]) -> None:
    assert len(history) == 3
    assert assert_pages_match_the_reference(container, history, seed=1) > 100


def test_a_rebuilt_index_is_identical_and_gives_the_same_pages(
    container: Container, history: list[str], redis_client, namespace
) -> None:
    live = snapshot(redis_client, namespace)
    assert any(k.endswith(":syslog:index") for k in live)

    Rebuilder(container.redis, container.keyspace).run(["syslog"])

    assert snapshot(redis_client, namespace) == live
    assert_pages_match_the_reference(container, history, seed=2)


def test_every_entry_is_in_its_account_index_and_its_resource_index_once(
    container: Container, history: list[str]
) -> None:
    keys, client = container.keyspace, container.redis
    for account_id in history:
        entries = client.xrange(keys.syslog(account_id))
        index = client.zrange(keys.syslog_index(account_id), 0, -1, withscores=True)
        assert [(i, float(json.loads(f["entry"])["id"])) for i, f in entries] == index
        by_resource: dict[str, list[str]] = {}
        for entry_id, fields in entries:
            by_resource.setdefault(json.loads(fields["entry"])["resourceId"], []).append(entry_id)
        for resource_id, ids in by_resource.items():
            key = keys.syslog_resource_index(account_id, resource_id)
            assert client.zrange(key, 0, -1) == ids


def test_a_projection_without_its_index_is_read_by_scanning_and_a_rebuild_indexes_it(
    container: Container, history: list[str], redis_client, caplog: pytest.LogCaptureFixture
) -> None:
    """A system log projected by an older keyledger has no index: pages stay right."""
    keys = container.keyspace
    account_id = history[0]
    expected = container.system_log.page(account_id, offset=2, limit=7)
    older = [keys.syslog_index(account_id)]
    older += list(redis_client.scan_iter(match=f"{keys.syslog(account_id)}:resource:*"))
    redis_client.delete(*older)

    with caplog.at_level(logging.WARNING, logger="keyledger.systemlog"):
        assert container.system_log.page(account_id, offset=2, limit=7) == expected
    assert "projections rebuild log" in caplog.text
    assert_pages_match_the_reference(container, [account_id], seed=3)

    Rebuilder(container.redis, container.keyspace).run(["syslog"])
    assert redis_client.zcard(keys.syslog_index(account_id)) == redis_client.xlen(
        keys.syslog(account_id)
    )


def test_a_resource_id_cannot_name_another_key(container: Container, history: list[str]) -> None:
    keys = container.keyspace
    account_id = history[0]
    for resource_id in ODD_RESOURCES:
        key = keys.syslog_resource_index(account_id, resource_id)
        assert key.startswith(f"{keys.syslog(account_id)}:resource:")
        suffix = key.rsplit(":resource:", 1)[1]
        assert not set(suffix) & set(":{} ")
        assert keys.projection_of(key) == (
            "syslog",
            "resource index",
            keys.partition_of(account_id),
        )
