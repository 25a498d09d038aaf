"""Projection rebuilds on the RQ queue, against a real Redis and a running projector."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from rq.serializers import JSONSerializer

import keyledger.workers.jobs as jobs
from keyledger.adapters.authlookup import AuthLookup
from keyledger.authn.authenticator import Authenticator
from keyledger.bootstrap import Container, check_partitions
from keyledger.cli import main
from keyledger.domain import commands as cmd
from keyledger.domain.errors import KeyledgerError
from keyledger.domain.events import OPERATOR, SYSTEM
from keyledger.domain.roles import ROLE_NAMES
from keyledger.workers.fold import MemoryFold
from keyledger.workers.rebuild import Progress, Rebuilder, RebuildError
from tests.integration.helpers import Bootstrapped, bootstrap
from tests.integration.lifecycle_helpers import Clock
from tests.integration.test_projector import drain, make_projector, snapshot

SUBNETS = [f"10.{i}.0.0/16" for i in range(6)] + [f"2001:db8:{i:x}::/48" for i in range(4)]


class FastHasher:
    """Stands in for argon2 while generating thousands of keys (the projection copies the
    hash as it is; only the bootstrapped keys are ever authenticated)."""

    def hash(self, token: str) -> str:
        return "$argon2id$v=19$m=19456,t=2,p=1$" + hashlib.sha256(token.encode()).hexdigest()


def random_history(container: Container, rng: random.Random, changes: int, accounts: int) -> int:
    """``changes`` random changes across ``accounts`` accounts; returns how many were recorded.

    The ledger's clock moves a minute per change, so expiries and grace periods set
    along the way come due and are recorded (``RecordExpiries``) as the history goes.
    """
    ledger = container.ledger
    real_hasher, ledger.hasher = ledger.hasher, FastHasher()  # type: ignore[assignment]
    real_clock, clock = ledger.clock, Clock()
    ledger.clock = clock
    try:
        ids = [
            ledger.register_account(f"Acct {n}", "Ann Owner", f"ann{n}@x.io", OPERATOR)[0]
            for n in range(accounts)
        ]
        recorded = accounts
        for step in range(changes):
            clock.advance(minutes=1)
            try:
                change(ledger, rng, rng.choice(ids), step)
                recorded += 1
            except KeyledgerError:
                pass  # a change the account refuses (last owner, duplicate, ...) records nothing
        return recorded
    finally:
        ledger.hasher, ledger.clock = real_hasher, real_clock


def change(ledger: Any, rng: random.Random, account_id: str, step: int) -> None:
    state = ledger.state(account_id)
    users, keys = sorted(state.users), sorted(state.keys)
    if keys and rng.random() < 0.3:
        lifecycle_change(ledger, rng, state, keys)
        return
    roll = rng.random()
    if roll < 0.04:
        if state.api_enabled:
            ledger.disable_api(account_id, OPERATOR)
        else:
            ledger.enable_api(account_id, OPERATOR)
    elif roll < 0.07 and state.account_key_id:
        ledger.rotate_account_key(account_id, OPERATOR)
    elif roll < 0.2 or not users:
        role = rng.choice(["Owner", "Viewer", "Logs Viewer", "Viewer", *ROLE_NAMES])
        ledger.add_user(account_id, f"User {step}", f"u{step}@x.io", role, OPERATOR)
    elif roll < 0.28:
        ledger.update_user(account_id, rng.choice(users), f"Renamed {step}", None, OPERATOR)
    elif roll < 0.36:
        ledger.update_user(account_id, rng.choice(users), None, rng.choice(ROLE_NAMES), OPERATOR)
    elif roll < 0.41:
        ledger.remove_user(account_id, rng.choice(users), OPERATOR)
    elif roll < 0.6 or not keys:
        cidrs = tuple(rng.sample(SUBNETS, rng.choice([0, 0, 1, 2])))
        ledger.create_secret_key(account_id, f"key-{step:08d}", rng.choice(users), cidrs, OPERATOR)
    elif roll < 0.7:
        ledger.delete_secret_key(account_id, rng.choice(keys), OPERATOR)
    elif roll < 0.87:
        ledger.allow_subnet(account_id, rng.choice(keys), rng.choice(SUBNETS), OPERATOR)
    else:
        name = rng.choice(keys)
        allowed = state.keys[name].allowed_source_ips
        ledger.remove_subnet(account_id, name, rng.choice(allowed or SUBNETS), OPERATOR)


def lifecycle_change(ledger: Any, rng: random.Random, state: Any, keys: list[str]) -> None:
    """A random step of a key's life: rotations, expiries, disable, leaks (issue 9)."""
    account_id, name, now = state.id, rng.choice(keys), ledger.clock()
    key = state.keys[name]
    roll = rng.random()
    if roll < 0.2:
        ledger.rotate_secret_key(account_id, name, rng.choice([0, 60, 600, 7200, 86400]), SYSTEM)
    elif roll < 0.35:
        ledger.update_secret_key(
            cmd.UpdateSecretKey(account_id=account_id, name=name, enabled=not key.enabled), SYSTEM
        )
    elif roll < 0.45:
        ledger.update_secret_key(
            cmd.UpdateSecretKey(account_id=account_id, name=name, description=f"step {now:%H%M}"),
            SYSTEM,
        )
    elif roll < 0.6:
        expires = None if rng.random() < 0.2 else now + timedelta(minutes=rng.randint(1, 90))
        ledger.update_secret_key(
            cmd.UpdateSecretKey(
                account_id=account_id, name=name, change_expiry=True, expires=expires
            ),
            SYSTEM,
        )
    elif roll < 0.78:
        ledger.record_expiries(account_id, SYSTEM)
    elif roll < 0.84:
        in_grace = key.previous_in_grace(now) is not None
        leaked = key.previous_hash if in_grace and rng.random() < 0.8 else key.key_hash
        ledger.revoke_leaked_secret(account_id, key.key_id, leaked, "https://github.com/x", SYSTEM)
    elif roll < 0.92 and state.account_key_id:
        ledger.rotate_account_key(account_id, SYSTEM, rng.choice([0, 300, 3600]))
    elif state.account_key_id:
        ledger.report_leaked_account_key(
            account_id, state.account_key_id, "https://github.com/y", SYSTEM
        )


# -- fixtures and helpers -----------------------------------------------------------------
@pytest.fixture
def rq_client(
    container: Container, redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """RQ's connection; the jobs of this test go to a queue of their own."""
    check_partitions(container.redis, container.keyspace)  # as every process does at start
    client = redis.Redis.from_url(redis_url)
    name = f"keyledger-{namespace}"
    monkeypatch.setattr(jobs, "QUEUE", name)
    monkeypatch.setenv("REDIS_URL", redis_url)
    yield client
    queue = Queue(name, connection=client, serializer=JSONSerializer)
    ids = {
        *queue.get_job_ids(),
        *FinishedJobRegistry(queue=queue).get_job_ids(),
        *FailedJobRegistry(queue=queue).get_job_ids(),
    }
    leftovers = [key for i in ids for key in (f"rq:job:{i}", f"rq:results:{i}")]
    for pattern in (f"rq:*{name}*", f"{namespace}~*"):
        leftovers += client.scan_iter(match=pattern, count=1000)
    client.srem("rq:queues", f"rq:queue:{name}")
    client.delete(*leftovers)


def work(rq_client: Any) -> None:
    """Run every queued job of this test to its end, in this process (RQ's SimpleWorker)."""
    queue = Queue(jobs.QUEUE, connection=rq_client, serializer=JSONSerializer)
    SimpleWorker([queue], connection=rq_client, serializer=JSONSerializer).work(burst=True)


def rebuild(container: Container, rq_client: Any, *projections: str) -> Job:
    job = jobs.enqueue_rebuild(
        rq_client, container.redis, container.keyspace, projections or ("auth", "syslog")
    )
    work(rq_client)
    assert job.get_status(refresh=True) == "finished", jobs.describe(job).get("error")
    return job


def wait_until_applied(container: Container, timeout: float = 10.0) -> None:
    """Until every projection checkpoint has reached the end of its partition's log."""
    keys, client = container.keyspace, container.redis
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        behind = False
        for p in range(keys.partitions):
            last = client.xrevrange(keys.log(p), count=1)
            checkpoints = client.mget([keys.checkpoint(n, p) for n in ("auth", "syslog")])
            if last and any(c != last[0][0] for c in checkpoints):
                behind = True
        if not behind:
            return
        time.sleep(0.02)
    raise AssertionError("the projector did not catch up")


def log_length(container: Container) -> int:
    keys = container.keyspace
    return sum(container.redis.xlen(keys.log(p)) for p in range(keys.partitions))


def authenticate(authenticator: Authenticator, b: Bootstrapped) -> bool:
    return authenticator.authenticate(
        method="GET",
        path="/v1/",
        source_ip="127.0.0.1",
        account_key=b.account_key,
        secret_key=b.secret_key,
    ).allowed


# -- identity and repair --------------------------------------------------------------------
def test_a_rebuilt_projection_is_identical_to_the_live_one_after_a_long_random_history(
    container: Container, projector, redis_client, namespace, rq_client
) -> None:
    container.ledger.apply_timeout = 0.0
    recorded = random_history(container, random.Random(3), changes=3000, accounts=12)
    wait_until_applied(container)
    live = snapshot(redis_client, namespace)
    assert sum(1 for k in live if k.endswith(":syslog")) == 12
    assert sum(1 for k in live if k.endswith(":syslog:index")) == 12
    resource_indexes = sum(1 for k in live if ":syslog:resource:" in k)
    assert resource_indexes > 12 * 10

    job = rebuild(container, rq_client)

    assert snapshot(redis_client, namespace) == live
    result = job.return_value()
    assert result["replayed"] == log_length(container) >= recorded > 2000
    assert result["keys"]["syslog"] == 12 * 2 + resource_indexes
    assert not list(redis_client.scan_iter(match=f"{namespace}~*"))
    print(f"\nreplay throughput: {result['eventsPerSecond']} log entries/s ({result})")


def test_a_rebuild_repairs_corrupted_deleted_and_stray_projection_keys(
    container: Container, projector, redis_client, namespace, rq_client
) -> None:
    container.ledger.apply_timeout = 0.0
    random_history(container, random.Random(5), changes=400, accounts=4)
    wait_until_applied(container)
    live = snapshot(redis_client, namespace)
    auth_keys = sorted(k for k in live if ":auth:key:" in k and not k.endswith(":subnets"))
    users = sorted(k for k in live if ":auth:user:" in k)
    subnets = sorted(k for k in live if k.endswith(":subnets"))
    logs = sorted(k for k in live if k.endswith(":syslog"))
    redis_client.hset(auth_keys[0], "hash", "tampered")
    redis_client.hdel(auth_keys[1], "account")
    redis_client.delete(users[0], logs[0])
    redis_client.sadd(subnets[0], "0.0.0.0/0")
    redis_client.xadd(logs[1], {"entry": "{}"})
    stray = container.keyspace.auth_key("00" + "f" * 14)
    assert stray is not None
    redis_client.hset(stray, mapping={"kind": "secret", "account": "x", "hash": "y"})
    assert snapshot(redis_client, namespace) != live

    rebuild(container, rq_client)

    assert snapshot(redis_client, namespace) == live


def refuses_a_tampered_shadow(
    container: Container,
    redis_client: redis.Redis,
    namespace: str,
    projection: str,
    tamper: Callable[[redis.Redis, MemoryFold], list[str]],
    seed: int,
    changes: int,
) -> None:
    """After a random history, something (``tamper``, naming the keys it changed) writes
    into the shadow between the replay and the check: the rebuild stops and the live
    projection is untouched."""
    container.ledger.apply_timeout = 0.0
    random_history(container, random.Random(seed), changes=changes, accounts=4)
    wait_until_applied(container)
    live = snapshot(redis_client, namespace)
    tampered: list[str] = []

    class Tampering(Rebuilder):
        def _check(self, generation: Any) -> None:
            tampered.extend(tamper(self.client, generation.fold))
            super()._check(generation)

    with pytest.raises(RebuildError, match="differs from the replay"):
        Tampering(container.redis, container.keyspace).run([projection])
    assert tampered
    assert snapshot(redis_client, namespace) == live


def test_a_shadow_that_differs_from_its_replay_is_never_switched_to(
    container: Container, projector, redis_client, namespace
) -> None:
    def add_to_the_expiry_index(client: redis.Redis, fold: MemoryFold) -> list[str]:
        for key in fold.zsets:  # the expiry index
            client.zadd(key, {"expiry:x:00ff": 1})
        return list(fold.zsets)

    refuses_a_tampered_shadow(
        container, redis_client, namespace, "auth", add_to_the_expiry_index, seed=11, changes=400
    )


@pytest.mark.parametrize(
    "tamper",
    [
        "stream: one more entry",
        "stream: last entry gone",
        "index: one more member",
        "index: first member gone",
        "index: last member rescored",
        "index: last member renamed",
    ],
)
def test_a_shadow_system_log_that_differs_from_its_replay_is_never_switched_to(
    container: Container, projector, redis_client, namespace, tamper: str
) -> None:
    def change_the_system_log(client: redis.Redis, fold: MemoryFold) -> list[str]:
        if not fold.streams:  # a partition without accounts
            return []
        if tamper.startswith("stream"):
            key = sorted(fold.streams)[0]
            if tamper.endswith("more entry"):
                client.xadd(key, {"entry": "{}"}, id="*")
            else:
                client.xdel(key, client.xrevrange(key, count=1)[0][0])
            return [key]
        key = sorted(fold.indexes)[0]
        [(top, score)] = client.zrange(key, -1, -1, withscores=True)
        [(first, _)] = client.zrange(key, 0, 0, withscores=True)
        if tamper.endswith("one more member"):
            client.zadd(key, {"9999999999999-0": score + 1})
        elif tamper.endswith("first member gone"):
            client.zrem(key, first)
        elif tamper.endswith("rescored"):
            client.zadd(key, {top: score + 0.5})
        else:
            client.zrem(key, top)
            client.zadd(key, {f"{top}x": score})
        return [key]

    refuses_a_tampered_shadow(
        container, redis_client, namespace, "syslog", change_the_system_log, seed=12, changes=150
    )


def test_a_rebuild_stops_at_the_live_checkpoint_so_the_projector_carries_on_cleanly(
    container: Container, redis_client, namespace, rq_client
) -> None:
    container.ledger.apply_timeout = 0.0
    random_history(container, random.Random(7), changes=300, accounts=4)
    projector = make_projector(container)
    projector.batch = 40
    for partition in range(container.keyspace.partitions):
        projector.catch_up(partition) if partition % 2 else projector._apply_next_batch(partition)
    behind = snapshot(redis_client, namespace)

    rebuild(container, rq_client)
    assert snapshot(redis_client, namespace) == behind  # the same entries, no more

    projector.batch = 500
    drain(projector)
    for partition in range(container.keyspace.partitions):
        projector.catch_up(partition)
    assert not projector.halted
    caught_up = snapshot(redis_client, namespace)
    rebuild(container, rq_client)
    assert snapshot(redis_client, namespace) == caught_up


def halt_on_a_poison_entry(container: Container, redis_client, partition: int) -> str:
    keys = container.keyspace
    entry_id = redis_client.xadd(keys.log(partition), {"type": "Nonsense"})
    deadline = time.monotonic() + 10
    while redis_client.hget(keys.halted(partition), "entry") != entry_id:
        assert time.monotonic() < deadline, "the projector did not halt"
        time.sleep(0.02)
    return entry_id


def test_an_entry_the_operator_skipped_is_skipped_by_the_rebuild_too(
    container: Container, projector, redis_client, namespace, rq_client, monkeypatch
) -> None:
    container.ledger.apply_timeout = 0.0
    b = bootstrap(container)
    partition = container.keyspace.partition_of(b.account_id)
    entry_id = halt_on_a_poison_entry(container, redis_client, partition)
    monkeypatch.setenv("KEYLEDGER_NAMESPACE", namespace)
    monkeypatch.setenv("KEYLEDGER_PARTITIONS", str(container.keyspace.partitions))
    skip = ["deadletter", "skip", "--partition", str(partition), "--entry", entry_id, "--yes"]
    assert CliRunner().invoke(main, skip).exit_code == 0
    container.ledger.disable_api(b.account_id, OPERATOR)
    wait_until_applied(container)
    live = snapshot(redis_client, namespace)

    job = rebuild(container, rq_client)

    assert job.return_value()["skipped"] == 1
    assert snapshot(redis_client, namespace) == live


def test_an_undecodable_entry_the_live_projection_passed_fails_the_rebuild_harmlessly(
    container: Container, redis_client, namespace, rq_client
) -> None:
    container.ledger.apply_timeout = 0.0
    b = bootstrap(container)
    keys = container.keyspace
    partition = keys.partition_of(b.account_id)
    projector = make_projector(container)
    drain(projector)
    redis_client.xadd(keys.log(partition), {"type": "Nonsense"})  # not parked: no projector saw it
    container.ledger.disable_api(b.account_id, OPERATOR)
    last = redis_client.xrevrange(keys.log(partition), count=1)[0][0]
    for name in ("auth", "syslog"):  # as if an older version had applied it
        redis_client.set(keys.checkpoint(name, partition), last)
    before = snapshot(redis_client, namespace)

    job = jobs.enqueue_rebuild(rq_client, container.redis, keys, ("auth", "syslog"))
    work(rq_client)

    assert job.get_status(refresh=True) == "failed"
    assert "cannot be decoded" in jobs.describe(job)["error"]
    assert snapshot(redis_client, namespace) == before
    assert not list(redis_client.scan_iter(match=f"{namespace}~*"))


# -- no pause -----------------------------------------------------------------------------
def test_authentication_keeps_working_while_a_rebuild_runs_beside_changes(
    container: Container, projector, redis_client, namespace, rq_client
) -> None:
    container.ledger.apply_timeout = 0.0
    b = bootstrap(container, "Steady")
    random_history(container, random.Random(11), changes=1500, accounts=8)
    wait_until_applied(container)
    uncached = Authenticator(AuthLookup(container.redis, container.keyspace), container.hasher)
    assert authenticate(container.authenticator, b) and authenticate(uncached, b)
    others = [
        container.ledger.register_account(f"Busy {n}", "Bo", f"b{n}@x.io", OPERATOR)[0]
        for n in range(4)
    ]
    container.ledger.hasher = FastHasher()  # type: ignore[assignment]
    stop, failures, made = threading.Event(), [], [0]

    def busy() -> None:
        rng = random.Random(13)
        while not stop.is_set():
            try:
                change(container.ledger, rng, rng.choice(others), 10_000 + made[0])
                made[0] += 1
            except KeyledgerError:
                pass
            for authenticator in (container.authenticator, uncached):
                if not authenticate(authenticator, b):
                    failures.append(time.monotonic())

    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    time.sleep(0.1)
    before = made[0]
    try:
        job = rebuild(container, rq_client)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert failures == []
    assert made[0] > before  # changes were made while it ran
    print(f"\nduring the rebuild: {made[0] - before} changes; {job.return_value()}")

    wait_until_applied(container)
    after_concurrent = snapshot(redis_client, namespace)
    rebuild(container, rq_client)
    assert snapshot(redis_client, namespace) == after_concurrent


def test_a_switch_retries_when_the_projector_moves_at_the_last_moment(
    container: Container, redis_client, namespace
) -> None:
    container.ledger.apply_timeout = 0.0
    b = bootstrap(container)
    projector = make_projector(container)
    drain(projector)
    rebuilder = Rebuilder(container.redis, container.keyspace)
    switch, moved = rebuilder._switch, []

    partition = container.keyspace.partition_of(b.account_id)
    watched = container.keyspace.checkpoint("auth", partition)

    def moving(*, keys: list[str], args: list[Any], client: Any = None) -> Any:
        if keys[0] == watched and not moved:  # just before the switch of B's partition
            ledger = container.ledger
            moved.append(ledger.add_user(b.account_id, "Late", "l@x.io", "Viewer", OPERATOR))
            drain(projector)
        return switch(keys=keys, args=args, client=client)

    rebuilder._switch = moving  # type: ignore[assignment]
    result = rebuilder.run(["auth", "syslog"])
    assert result["switchRetries"] >= 1 and result["caughtUp"] >= 1
    current = snapshot(redis_client, namespace)
    assert (
        Rebuilder(container.redis, container.keyspace).run(["auth", "syslog"])["switchRetries"] == 0
    )
    assert snapshot(redis_client, namespace) == current
    user_id = moved[0][0]
    assert redis_client.hget(container.keyspace.auth_user(b.account_id, user_id), "name") == "Late"


# -- one at a time, progress, command line ------------------------------------------------
def test_only_one_rebuild_of_a_projection_is_queued_or_running_at_a_time(
    container: Container, projector, rq_client
) -> None:
    bootstrap(container)
    enqueue = lambda *names: jobs.enqueue_rebuild(  # noqa: E731
        rq_client, container.redis, container.keyspace, names
    )
    first = enqueue("auth")
    with pytest.raises(jobs.RebuildInProgress) as refused:
        enqueue("auth", "syslog")
    assert refused.value.job_id == first.id and first.id in refused.value.description
    log_job = enqueue("syslog")  # another projection may rebuild meanwhile

    work(rq_client)
    assert first.get_status(refresh=True) == log_job.get_status(refresh=True) == "finished"
    assert enqueue("auth", "syslog").id  # released when the jobs ended
    work(rq_client)


def test_of_two_racing_rebuilds_only_one_is_accepted(
    container: Container, projector, rq_client
) -> None:
    bootstrap(container)
    barrier, outcomes = threading.Barrier(4, timeout=30), []

    def race() -> None:
        barrier.wait()
        try:
            outcomes.append(
                jobs.enqueue_rebuild(rq_client, container.redis, container.keyspace, ["auth"]).id
            )
        except jobs.RebuildInProgress as exc:
            outcomes.append(f"refused {exc.job_id}")

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted = [o for o in outcomes if not o.startswith("refused")]
    assert len(accepted) == 1 and outcomes.count(f"refused {accepted[0]}") == 3
    work(rq_client)


def test_a_job_refuses_to_run_while_another_holds_the_lock(
    container: Container, projector, rq_client, redis_client
) -> None:
    bootstrap(container)
    running = jobs.enqueue_rebuild(rq_client, container.redis, container.keyspace, ["auth"])
    lock = container.keyspace.rebuild_lock("auth")
    redis_client.delete(lock)  # say its lock expired while it sat in the queue...
    other = jobs.enqueue_rebuild(rq_client, container.redis, container.keyspace, ["auth"])
    work(rq_client)  # ...then the first job runs, finds the second's lock and stops
    assert running.get_status(refresh=True) == "failed"
    assert "already queued or running" in jobs.describe(running)["error"]
    assert other.get_status(refresh=True) == "finished"
    assert redis_client.get(lock) is None


def test_a_lock_left_by_a_job_that_ended_is_taken_over(
    container: Container, projector, rq_client, redis_client
) -> None:
    bootstrap(container)
    redis_client.set(container.keyspace.rebuild_lock("auth"), "job-killed-long-ago")
    job = jobs.enqueue_rebuild(rq_client, container.redis, container.keyspace, ["auth"])
    work(rq_client)
    assert job.get_status(refresh=True) == "finished"


def test_progress_is_reported_as_the_replay_goes(container: Container, projector) -> None:
    container.ledger.apply_timeout = 0.0
    random_history(container, random.Random(17), changes=200, accounts=3)
    wait_until_applied(container)
    seen: list[dict[str, Any]] = []

    def record(progress: Progress) -> None:
        seen.append(progress.as_meta())

    Rebuilder(container.redis, container.keyspace, batch=25, on_progress=record).run(["auth"])
    total = log_length(container)
    done = [s["done"] for s in seen if s["phase"] == "replaying"]
    assert done == sorted(done) and len(set(done)) > 5 and max(done) == total
    assert {"replaying", "checking", "switching"} <= {s["phase"] for s in seen}
    assert seen[-1] == {"done": total, "total": total, "phase": "done", "partition": None}


def test_the_job_keeps_its_progress_in_its_meta(container: Container, projector, rq_client) -> None:
    bootstrap(container)
    job = rebuild(container, rq_client, "syslog")
    meta = job.get_meta(refresh=True)
    total = log_length(container)
    assert meta["done"] == meta["total"] == total and meta["phase"] == "done"


@pytest.fixture
def cli(container: Container, rq_client, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KEYLEDGER_NAMESPACE", container.settings.namespace)
    monkeypatch.setenv("KEYLEDGER_PARTITIONS", str(container.settings.partitions))

    def invoke(*args: str) -> tuple[int, dict[str, Any]]:
        result = CliRunner().invoke(main, ["projections", *args, "--json"])
        return result.exit_code, json.loads(result.stdout)

    return invoke


def test_rebuild_no_wait_prints_the_job_id_at_once(
    cli, container: Container, projector, rq_client
) -> None:
    bootstrap(container)
    code, queued = cli("rebuild", "auth", "--no-wait")
    assert code == 0 and queued["status"] == "queued" and queued["projections"] == ["auth"]
    assert set(queued) >= {"jobId", "status", "done", "total"}
    code, refused = cli("rebuild", "all", "--no-wait")
    assert code == 1 and refused["error"]["code"] == "rebuild_in_progress"
    assert queued["jobId"] in refused["error"]["description"]
    work(rq_client)
    code, shown = cli("job", queued["jobId"])
    assert code == 0 and shown["status"] == "finished" and shown["done"] == shown["total"] > 0
    code, missing = cli("job", "no-such-job")
    assert code == 1 and missing["error"]["status"] == 404


def test_rebuild_waits_for_the_job_and_reports_it(
    cli, container: Container, projector, rq_client
) -> None:
    bootstrap(container)
    answer: list[tuple[int, dict[str, Any]]] = []
    thread = threading.Thread(target=lambda: answer.append(cli("rebuild", "log")))
    thread.start()
    queue = Queue(jobs.QUEUE, connection=rq_client, serializer=JSONSerializer)
    deadline = time.monotonic() + 10
    while queue.count == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    work(rq_client)
    thread.join(timeout=10)
    code, finished = answer[0]
    assert code == 0 and finished["status"] == "finished"
    assert finished["done"] == finished["total"] == log_length(container)
    assert finished["result"]["projections"] == ["syslog"]


# -- the in-memory fold follows Redis --------------------------------------------------------
KEY_NAMES = st.sampled_from(["fold:a", "fold:b", "fold:c"])
VALUES = st.sampled_from(["x", "y", "z", "1"])
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("hset"), KEY_NAMES, st.dictionaries(VALUES, VALUES, min_size=1)),
        st.tuples(st.just("sadd"), KEY_NAMES, st.lists(VALUES, min_size=1)),
        st.tuples(st.just("srem"), KEY_NAMES, st.lists(VALUES, min_size=1)),
        st.tuples(st.just("hdel"), KEY_NAMES, st.lists(VALUES, min_size=1)),
        st.tuples(
            st.just("zadd"),
            KEY_NAMES,
            st.dictionaries(VALUES, st.integers(0, 2**50), min_size=1),
        ),
        st.tuples(st.just("zrem"), KEY_NAMES, st.lists(VALUES, min_size=1)),
        st.tuples(st.just("delete"), KEY_NAMES, st.just(None)),
    ),
    max_size=30,
)
#: What the system-log indexes see: members appended with growing scores, and deletions.
INDEX_OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), KEY_NAMES, st.lists(VALUES, min_size=1, unique=True)),
        st.tuples(st.just("sadd"), KEY_NAMES, st.lists(VALUES, min_size=1)),
        st.tuples(st.just("delete"), KEY_NAMES, st.just(None)),
    ),
    max_size=30,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=OPERATIONS, flush_every=st.integers(1, 10))
def test_the_memory_fold_writes_what_redis_would_hold(
    redis_client, namespace, operations: list[tuple[str, str, Any]], flush_every: int
) -> None:
    direct, folded = f"{namespace}:direct:", f"{namespace}:folded:"
    redis_client.delete(*(p + k for p in (direct, folded) for k in ("fold:a", "fold:b", "fold:c")))
    fold = MemoryFold()
    follow_redis(redis_client, fold, operations, flush_every, direct, folded)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=INDEX_OPERATIONS, flush_every=st.integers(1, 10))
def test_the_memory_fold_appends_to_streamed_sorted_sets_what_redis_would_hold(
    redis_client, namespace, operations: list[tuple[str, str, Any]], flush_every: int
) -> None:
    direct, folded = f"{namespace}:direct:", f"{namespace}:folded:"
    redis_client.delete(*(p + k for p in (direct, folded) for k in ("fold:a", "fold:b", "fold:c")))
    fold = MemoryFold(streamed=lambda name: True)
    scores = iter(range(1, 10_000))  # the indexes grow as the system log does
    appends = [
        ("zadd", key, {f"{m}-{next(scores)}": next(scores) for m in arg})
        if op == "append"
        else (op, key, arg)
        for op, key, arg in operations
    ]
    follow_redis(redis_client, fold, appends, flush_every, direct, folded)
    assert not fold.zsets  # streamed: never held whole


def follow_redis(
    redis_client: redis.Redis,
    fold: MemoryFold,
    operations: list[tuple[str, str, Any]],
    flush_every: int,
    direct: str,
    folded: str,
) -> None:
    """Apply ``operations`` to Redis and to ``fold`` (flushed to Redis): the same keys result."""
    with redis_client.pipeline(transaction=False) as pipe:
        for n, (op, key, arg) in enumerate(operations):
            try:
                if op in {"hset", "zadd"}:
                    getattr(redis_client, op)(direct + key, mapping=arg)
                elif op in {"sadd", "srem", "hdel", "zrem"}:
                    getattr(redis_client, op)(direct + key, *arg)
                else:
                    redis_client.delete(direct + key)
            except redis.ResponseError:
                with pytest.raises(ValueError):
                    call_fold(fold, op, folded + key, arg)
                continue
            call_fold(fold, op, folded + key, arg)
            if n % flush_every == 0:
                fold.flush(pipe)
                pipe.execute()
        fold.flush(pipe)
        pipe.execute()
    for key in ("fold:a", "fold:b", "fold:c"):
        assert dump(redis_client, direct + key) == dump(redis_client, folded + key)
        assert (folded + key in fold.existing()) == bool(redis_client.exists(folded + key))


def call_fold(fold: MemoryFold, op: str, key: str, arg: Any) -> None:
    if op in {"hset", "zadd"}:
        getattr(fold, op)(key, mapping=arg)
    elif op in {"sadd", "srem", "hdel", "zrem"}:
        getattr(fold, op)(key, *arg)
    else:
        fold.delete(key)


def dump(client: redis.Redis, key: str) -> object:
    kind = client.type(key)
    if kind == "hash":
        return ("hash", list(client.hgetall(key).items()))
    if kind == "set":
        return ("set", sorted(client.smembers(key)))
    if kind == "zset":
        return ("zset", client.zrange(key, 0, -1, withscores=True))
    return kind


def test_the_memory_fold_refuses_a_streamed_member_that_is_not_an_append() -> None:
    fold = MemoryFold(streamed=lambda name: name == "index")
    fold.zadd("index", {"1700000000000-0": 1, "1700000000000-1": 2})
    for late in ({"1700000000000-2": 2}, {"1699999999999-0": 0.5}):
        with pytest.raises(ValueError, match="not above"):
            fold.zadd("index", late)
    with pytest.raises(ValueError, match="only ever appended"):
        fold.zrem("index", "1700000000000-0")
    assert fold.indexes["index"] == (2.0, "1700000000000-1", 2)
    fold.zadd("small", {"a": 5})
    fold.zadd("small", {"a": 1})  # held whole: any change
    assert fold.zsets["small"] == {"a": 1.0}


def test_a_replayed_subnet_that_is_not_canonical_fails_the_check_every_time() -> None:
    from keyledger.adapters.keyspace import Keyspace
    from keyledger.workers.rebuild import _unsound

    keys = Keyspace("kl", 4)
    record = keys.auth_key("01" + "ab" * 7)
    assert record is not None
    fold = MemoryFold()
    fold.sadd(f"{record}:subnets", "10.1.0.0/16", "2001:db8::/48")
    assert _unsound(keys, f"{record}:subnets", fold) is None
    for bad in ("10.1.0.1/16", "10.1.0.0/33", "nonsense"):
        fold.sadd(f"{record}:subnets", bad)
        for _ in range(2):  # the second time from what the first remembered
            assert "holds a bad subnet" in (_unsound(keys, f"{record}:subnets", fold) or "")
        fold.srem(f"{record}:subnets", bad)
    assert _unsound(keys, f"{record}:subnets", fold) is None
