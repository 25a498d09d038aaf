"""Fault tests with real processes: SIGKILLed projectors and a crashed Redis.

The projections after a chaotic run must equal, key for key and byte for byte,
those of an uninterrupted run over the same log; every change acknowledged to a
client must survive a Redis crash.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from keyledger.adapters.embedded import EmbeddedRedis
from keyledger.adapters.keyspace import Keyspace
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from keyledger.domain.errors import KeyledgerError
from keyledger.domain.events import OPERATOR
from tests.conftest import RunningProjector
from tests.integration.test_projector import snapshot

BIN = Path(sys.executable).parent


def random_history(
    container: Container, changes: int, seed: int, accounts: list[str] | None = None
) -> list[str]:
    """Many small changes over a few accounts (four new ones, or ``accounts``); cheap ones
    mostly (argon2 is slow). Returns the accounts changed."""
    rng = random.Random(seed)
    ledger = container.ledger
    if accounts is None:
        accounts = []
        for i in range(4):
            account_id, owner, _ = ledger.register_account(f"A{i}", "Owner", f"o{i}@x.io", OPERATOR)
            ledger.enable_api(account_id, OPERATOR)
            ledger.create_secret_key(account_id, f"owner-key-{i:04d}", owner, (), OPERATOR)
            accounts.append(account_id)
    for n in range(changes):
        account_id = rng.choice(accounts)
        state = ledger.state(account_id)
        users = [u for u in state.users.values() if u.role.value != "Owner"]
        roll = rng.random()
        try:
            if roll < 0.3 or not users:
                ledger.add_user(account_id, f"user {n}", f"u{n}@x.io", "Viewer", OPERATOR)
            elif roll < 0.5:
                user = rng.choice(users)
                ledger.update_user(
                    account_id, user.id, None, rng.choice(["Viewer", "Member"]), OPERATOR
                )
            elif roll < 0.6:
                ledger.update_user(account_id, rng.choice(users).id, f"renamed {n}", None, OPERATOR)
            elif roll < 0.65:
                ledger.remove_user(account_id, rng.choice(users).id, OPERATOR)
            else:
                key = rng.choice(sorted(state.keys))
                cidr = f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24"
                if len(state.keys[key].allowed_source_ips) < 8:
                    ledger.allow_subnet(account_id, key, cidr, OPERATOR)
                else:
                    ledger.remove_subnet(
                        account_id, key, state.keys[key].allowed_source_ips[0], OPERATOR
                    )
        except KeyledgerError:
            continue
    return accounts


def copy_log(client: redis.Redis, source: Keyspace, target: Keyspace) -> None:
    for partition in range(source.partitions):
        for entry_id, fields in client.xrange(source.log(partition)):
            client.xadd(target.log(partition), fields, id=entry_id)


def normalised(state: dict[str, object], namespace: str) -> dict[str, object]:
    return {key.replace(namespace, "NS", 1): value for key, value in state.items()}


def wait_until_caught_up(client: redis.Redis, keys: Keyspace, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        behind = 0
        for partition in range(keys.partitions):
            last = client.xrevrange(keys.log(partition), count=1)
            checkpoints = client.mget([keys.checkpoint(p, partition) for p in ("auth", "syslog")])
            if last and any(c != last[0][0] for c in checkpoints):
                behind += 1
        if not behind:
            return
        assert time.monotonic() < deadline, "projector did not catch up"
        time.sleep(0.05)


class ChaosProjector:
    """Starts `keyledger projector` processes and SIGKILLs them at random moments."""

    def __init__(self, env: dict[str, str], seed: int):
        self.env, self.rng = env, random.Random(seed)
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.stop = threading.Event()

    def start(self) -> None:
        consumer = f"chaos-{self.rng.randrange(3)}"  # sometimes a new name, sometimes the old one
        self.process = subprocess.Popen(
            [str(BIN / "keyledger"), "projector", "--consumer", consumer],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def run(self) -> None:
        self.start()
        while not self.stop.wait(self.rng.uniform(0.05, 0.6)):
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.kills += 1
            self.start()

    def close(self) -> None:
        self.stop.set()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def history_under_chaos(
    container: Container,
    env: dict[str, str],
    changes: int,
    seeds: tuple[int, int],
    min_kills: int = 3,
) -> int:
    """``random_history`` (seed ``seeds[0]``) while projectors (seed ``seeds[1]``) are
    SIGKILLed at random moments; how many were killed. On a fast machine the history can
    end before ``min_kills`` projectors were killed: more changes to the same accounts
    follow, in rounds of a tenth (other seeds), until they were (at most 100 rounds)."""
    chaos = ChaosProjector(env, seed=seeds[1])
    killer = threading.Thread(target=chaos.run)
    killer.start()
    try:
        accounts = random_history(container, changes=changes, seed=seeds[0])
        for extra in range(1, 101):
            if chaos.kills >= min_kills:
                break
            random_history(container, max(1, changes // 10), seeds[0] + extra, accounts)
    finally:
        chaos.close()
        killer.join()
    return chaos.kills


def test_sigkilled_projectors_end_where_an_uninterrupted_run_ends(
    container: Container, redis_client: redis.Redis, namespace: str
) -> None:
    container.ledger.apply_timeout = 0.0
    settings = container.settings
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "KEYLEDGER_NAMESPACE": namespace,
        "KEYLEDGER_PARTITIONS": str(settings.partitions),
        "KEYLEDGER_LOG_LEVEL": "WARNING",
    }
    assert history_under_chaos(container, env, changes=2500, seeds=(11, 7)) >= 3
    survivor = ChaosProjector(env, seed=1)
    survivor.start()
    try:
        wait_until_caught_up(redis_client, container.keyspace)
    finally:
        survivor.close()
    chaotic = normalised(snapshot(redis_client, namespace), namespace)

    clean_namespace = f"{namespace}c"
    clean = build(
        Settings(
            redis_url=settings.redis_url, namespace=clean_namespace, partitions=settings.partitions
        )
    )
    try:
        copy_log(redis_client, container.keyspace, clean.keyspace)
        with RunningProjector(clean):
            wait_until_caught_up(redis_client, clean.keyspace)
        reference = normalised(snapshot(redis_client, clean_namespace), clean_namespace)
    finally:
        leftovers = list(redis_client.scan_iter(match=f"{clean_namespace}:*"))
        if leftovers:
            redis_client.delete(*leftovers)
    projections = {k: v for k, v in chaotic.items() if ":proj:" not in k and k != "NS:meta"}
    assert projections == {k: v for k, v in reference.items() if ":proj:" not in k}
    assert len(projections) > 100


@pytest.fixture
def crashable_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", persistent=True)
    server.start()
    yield server
    server.stop()


def test_acknowledged_changes_survive_a_redis_crash_and_projections_catch_up(
    crashable_redis: EmbeddedRedis,
) -> None:
    settings = Settings(
        redis_url=crashable_redis.url,
        namespace="crash",
        partitions=2,
        apply_timeout=0.0,
        redis_timeout=0.5,
    )
    container = build(settings)
    acknowledged: list[str] = []
    account_id, _, _ = container.ledger.register_account("Acme", "Ann", "ann@x.io", OPERATOR)
    with RunningProjector(container):
        for n in range(300):
            if n == 150:
                assert crashable_redis.process is not None
                crashable_redis.process.send_signal(signal.SIGKILL)  # a crash, not a clean shutdown
                crashable_redis.process.wait()
                crashable_redis.start()
            try:
                user_id, _ = container.ledger.add_user(
                    account_id, f"user {n}", f"u{n}@x.io", "Viewer", OPERATOR
                )
            except KeyledgerError:
                continue  # not acknowledged: allowed to be lost
            acknowledged.append(user_id)
        client = redis.Redis.from_url(crashable_redis.url, decode_responses=True)
        wait_until_caught_up(client, container.keyspace)
    assert len(acknowledged) >= 290
    state = container.ledger.state(account_id)
    assert set(acknowledged) <= set(state.users)
    for user_id in acknowledged:
        assert client.hget(container.keyspace.auth_user(account_id, user_id), "role") == "Viewer"
