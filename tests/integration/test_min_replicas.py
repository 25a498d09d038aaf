"""KEYLEDGER_MIN_REPLICAS on a single Redis with a replica: a change is acknowledged only
once the replica holds it; otherwise 503, and a retry with the same Idempotency-Key
returns the first result if the change survived or applies it once if it did not.

Each test starts its own primary and replica (the replica of the session's Redis
would replicate every other test's keys too).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from keyledger import create_app
from keyledger.adapters.embedded import EmbeddedRedis
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from tests.conftest import RunningProjector
from tests.integration.conftest import unlimited
from tests.integration.helpers import Bootstrapped, bootstrap

WAIT_MS = 200


class Replica(EmbeddedRedis):
    def __init__(self, data_dir: Path, primary_port: int):
        super().__init__(data_dir, persistent=False)
        self.primary_port = primary_port

    def config(self) -> str:
        return super().config() + f"replicaof 127.0.0.1 {self.primary_port}\n"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)

    def wait_in_sync(self) -> None:
        deadline = time.monotonic() + 10
        while self.client().info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.02)

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)


@dataclasses.dataclass
class Pair:
    primary: EmbeddedRedis
    replica: Replica
    container: Container
    web: FlaskClient
    owner: Bootstrapped


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    primary = EmbeddedRedis(tmp_path / "primary", persistent=False)
    primary.start()
    replica = Replica(tmp_path / "replica", primary.port)
    try:
        replica.start()
        replica.wait_in_sync()
        settings = unlimited(
            Settings(
                redis_url=primary.url,
                namespace="mr",
                partitions=4,
                apply_timeout=2.0,
                min_replicas=1,
                replica_wait_ms=WAIT_MS,
            )
        )
        container = build(settings)
        with RunningProjector(container):
            owner = bootstrap(container)
            app = create_app({"container": container, "TESTING": True})
            with app.test_client() as web:
                yield Pair(primary, replica, container, web, owner)
    finally:
        with contextlib.suppress(ProcessLookupError):
            replica.resume()
        replica.stop()
        primary.stop()


def add_user(
    pair: Pair, email: str, idempotency_key: str | None = None, web: FlaskClient | None = None
):  # type: ignore[no-untyped-def]
    headers = {"x-api-key": pair.owner.account_key, "x-api-secret-key": pair.owner.secret_key}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    body = {"name": "Rita Replicated", "email": email, "role": "Viewer"}
    return (web or pair.web).post("/v1/users", headers=headers, json=body)


def added(client: redis.Redis, pair: Pair, email: str) -> list[dict[str, str]]:
    """The UserAdded entries of that email in the account's stream, on that server."""
    keys = pair.container.keyspace
    return [
        fields
        for _, fields in client.xrange(keys.account_events(pair.owner.account_id))
        if fields.get("type") == "UserAdded" and email in fields.get("data", "")
    ]


def test_a_change_answered_2xx_is_on_the_replica_in_the_log_and_in_effect(pair: Pair) -> None:
    response = add_user(pair, "rita@example.com")
    assert response.status_code == 201
    user_id = response.get_json()["id"]
    replica = pair.replica.client()
    # Read on the replica at once: the WAIT covered the append and the projector's work.
    assert len(added(replica, pair, "rita@example.com")) == 1
    keys = pair.container.keyspace
    assert replica.hget(keys.auth_user(pair.owner.account_id, user_id), "role") == "Viewer"


def test_without_its_replica_a_change_is_503_saying_it_may_or_may_not_be_recorded(
    pair: Pair,
) -> None:
    pair.replica.pause()
    response = add_user(pair, "rita@example.com", "add-rita-1")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "change_unconfirmed"
    assert "may or may not have been recorded" in error["description"]
    assert "Idempotency-Key" in error["description"]
    assert response.headers["Retry-After"] == "1"
    assert "secretKey" not in response.get_data(as_text=True)


def test_a_retry_returns_the_first_result_once_the_replica_holds_it(pair: Pair) -> None:
    pair.replica.pause()
    assert add_user(pair, "rita@example.com", "add-rita-2").status_code == 503
    assert add_user(pair, "rita@example.com", "add-rita-2").status_code == 503  # still alone
    primary = redis.Redis(port=pair.primary.port, decode_responses=True)
    assert len(added(primary, pair, "rita@example.com")) == 1  # recorded once, not twice
    pair.replica.resume()
    pair.replica.wait_in_sync()
    retried = add_user(pair, "rita@example.com", "add-rita-2")
    assert retried.status_code == 201
    assert retried.headers["Idempotent-Replayed"] == "true"
    event = added(primary, pair, "rita@example.com")
    assert len(event) == 1 and retried.get_json()["id"] in event[0]["data"]
    assert len(added(pair.replica.client(), pair, "rita@example.com")) == 1
    assert add_user(pair, "rita@example.com", "add-rita-2").get_json() == retried.get_json()


def test_a_retry_applies_the_change_once_when_the_failover_lost_it(
    pair: Pair, tmp_path: Path
) -> None:
    """The replica misses the change (paused), the primary dies, the replica is promoted:
    the change is gone. The idempotency record (written after the 503) did reach the new
    primary, as on a cluster it may: the retry finds its change missing from the log and
    applies it, once."""
    pair.replica.pause()
    primary = redis.Redis(port=pair.primary.port, decode_responses=True)
    primary.client_kill_filter(_type="replica")  # nothing more reaches the replica
    assert add_user(pair, "lost@example.com", "add-lost").status_code == 503
    records = {k: primary.get(k) for k in primary.scan_iter(match="mr:*:idem:*")}
    assert len(records) == 1 and '"unconfirmed"' in next(iter(records.values()))
    assert pair.primary.process is not None
    pair.primary.process.kill()  # the crash
    pair.primary.process.wait()
    pair.replica.resume()
    promoted = pair.replica.client()
    promoted.replicaof("NO", "ONE")
    for key, value in records.items():
        promoted.set(key, str(value))
    assert added(promoted, pair, "lost@example.com") == []

    settings = dataclasses.replace(
        pair.container.settings, redis_url=pair.replica.url, min_replicas=0
    )
    survivor = build(settings)
    with RunningProjector(survivor):
        app = create_app({"container": survivor, "TESTING": True})
        with app.test_client() as web:
            retried = add_user(pair, "lost@example.com", "add-lost", web=web)
            assert retried.status_code == 201
            assert "Idempotent-Replayed" not in retried.headers
            again = add_user(pair, "lost@example.com", "add-lost", web=web)
            assert again.status_code == 201 and again.get_json() == retried.get_json()
    assert len(added(promoted, pair, "lost@example.com")) == 1


def test_status_warns_when_a_primary_has_fewer_replicas_than_every_change_needs(
    pair: Pair,
) -> None:
    from keyledger.adapters import health

    topology, keys = pair.container.topology, pair.container.keyspace
    assert health.replica_warnings(topology, 1) == []
    pair.replica.stop()
    deadline = time.monotonic() + 10
    while not (warnings := health.replica_warnings(topology, 1)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "0 connected replicas but KEYLEDGER_MIN_REPLICAS=1" in warnings[0]
    assert warnings == [w for w in health.status(topology, keys, 1).warnings if "replicas" in w]
