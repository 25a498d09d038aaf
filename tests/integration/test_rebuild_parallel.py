"""A rebuild split over several RQ workers (``workers.rebuild_run``), on a real Redis."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rq import Queue, Worker
from rq.serializers import JSONSerializer

import keyledger.workers.jobs as jobs
import keyledger.workers.rebuild_run as rebuild_run
from keyledger.bootstrap import Container
from tests.integration import test_rebuild
from tests.integration.test_projector import snapshot
from tests.integration.test_rebuild import random_history, wait_until_applied, work

rq_client = test_rebuild.rq_client  # the fixture: this test's own RQ queue

KEYLEDGER = str(Path(sys.executable).with_name("keyledger"))


@pytest.fixture
def two_workers(container: Container, rq_client: Any, redis_url: str) -> Iterator[list[Any]]:
    """Two ``keyledger worker`` processes (forking RQ workers) on this test's queue."""
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "KEYLEDGER_NAMESPACE": container.settings.namespace,
        "KEYLEDGER_PARTITIONS": str(container.settings.partitions),
        "KEYLEDGER_LOG_LEVEL": "WARNING",
    }
    procs = [
        subprocess.Popen(
            [KEYLEDGER, "worker", "--queue", jobs.QUEUE],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    queue = Queue(jobs.QUEUE, connection=rq_client, serializer=JSONSerializer)
    deadline = time.monotonic() + 30
    while len(Worker.all(queue=queue)) < 2:
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.05)
    yield procs
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)


def finished(job: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while job.get_status(refresh=True) not in ("finished", "failed"):
        assert time.monotonic() < deadline, "the rebuild did not end"
        time.sleep(0.05)
    assert job.get_status() == "finished", jobs.describe(job).get("error")
    return dict(job.return_value())


def log_indexes(client: Any, namespace: str) -> dict[str, list[tuple[str, float]]]:
    """Every system-log index (the account's, and each resource's) with members and scores."""
    return {
        key: client.zrange(key, 0, -1, withscores=True)
        for key in sorted(client.scan_iter(match=f"{namespace}:*:syslog:*", count=1000))
        if key.endswith(":syslog:index") or ":syslog:resource:" in key
    }


def pages(container: Container, namespace: str, client: Any) -> dict[tuple[str, str], Any]:
    """What ``GET /v1/logs`` reads for every account, filtered by each of its resources and
    by a time window, through the real reader (which serves them from the indexes)."""
    reader, keys, read = container.system_log, container.keyspace, {}
    for index in client.scan_iter(match=f"{namespace}:*:syslog:index", count=1000):
        account = index.split(":acct:")[1].split(":")[0]
        ids = client.zrange(index, 0, -1)
        low, high = ids[len(ids) // 3], ids[2 * len(ids) // 3]
        window = [datetime.fromtimestamp(int(i.split("-")[0]) / 1000, UTC) for i in (low, high)]
        read[account, "window"] = reader.page(
            account, offset=1, limit=50, start=window[0], end=window[1]
        )
        for resource in client.scan_iter(match=f"{keys.syslog(account)}:resource:*", count=1000):
            rid = resource.rsplit(":resource:", 1)[1]
            read[account, rid] = reader.page(account, offset=0, limit=20, resource_id=rid)
    return read


def test_a_rebuild_over_two_workers_is_identical_to_the_live_projection_indexes_included(
    container: Container,
    projector,
    redis_client,
    namespace,
    rq_client,
    two_workers,
) -> None:
    container.ledger.apply_timeout = 0.0
    random_history(container, random.Random(23), changes=1500, accounts=10)
    wait_until_applied(container)
    live, indexes = snapshot(redis_client, namespace), log_indexes(redis_client, namespace)
    assert len(indexes) > 10 * 5
    read = pages(container, namespace, redis_client)

    job = jobs.enqueue_rebuild(rq_client, container.redis, container.keyspace, ("auth", "syslog"))
    result = finished(job)

    assert result["workers"] == 2  # the second worker took part
    assert snapshot(redis_client, namespace) == live
    assert log_indexes(redis_client, namespace) == indexes
    assert pages(container, namespace, redis_client) == read
    meta = job.get_meta(refresh=True)
    assert meta["done"] == meta["total"] == result["replayed"] and meta["phase"] == "done"
    assert not list(redis_client.scan_iter(match=f"{namespace}~*"))
    assert not list(redis_client.scan_iter(match=f"{namespace}:rebuild:*"))


def test_a_helper_that_stops_mid_partition_fails_the_rebuild_and_its_partition_stays_live(
    container: Container,
    projector,
    redis_client,
    namespace,
    rq_client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    container.ledger.apply_timeout = 0.0
    random_history(container, random.Random(29), changes=300, accounts=6)
    wait_until_applied(container)
    account = next(iter(redis_client.scan_iter(match=f"{namespace}:*:syslog:index")))
    account = account.split(":acct:")[1].split(":")[0]
    lost: list[int] = []

    def a_helper_that_dies(job: Any, projections: Any, ns: str, partitions: int, width: Any):
        """A helper joins, takes a partition, then its worker is killed: no more beats."""
        run = rebuild_run.RebuildRun(container.redis, container.keyspace, job.id)
        assert run.join("killed-helper")
        held = container.keyspace.partition_of(account)  # one that holds an account
        assert redis_client.lrem(run.todo, 1, held) == 1  # taken, as LPOP would
        lost.append(held)
        return ["killed-helper"]

    monkeypatch.setattr(jobs, "_enqueue_helpers", a_helper_that_dies)
    monkeypatch.setattr(rebuild_run, "STALE_AFTER", 1.0)
    # Make the lost partition's live projection recognisably different from a rebuild.
    for key in redis_client.scan_iter(match=f"{namespace}:*:auth", count=1000):
        redis_client.hset(key, "tampered", "1")
    tampered = snapshot(redis_client, namespace)

    job = jobs.enqueue_rebuild(rq_client, container.redis, container.keyspace, ("auth",))
    work(rq_client)

    assert job.get_status(refresh=True) == "failed"
    assert "partitions were rebuilt" in jobs.describe(job)["error"]
    partition = lost[0]
    after = snapshot(redis_client, namespace)
    tag = container.keyspace.tag(partition)
    accounts = [k for k in tampered if k.endswith(":auth")]
    assert any(k.startswith(tag) for k in accounts) and not all(k.startswith(tag) for k in accounts)
    for key in accounts:
        if key.startswith(tag):
            assert after[key] == tampered[key]  # untouched: still tampered
        else:
            assert "tampered" not in after[key]  # the other partitions were switched
    assert not list(redis_client.scan_iter(match=f"{namespace}~*"))
    assert redis_client.get(container.keyspace.rebuild_lock("auth")) is None
