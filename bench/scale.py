"""Figures for the capacity model (docs/operators.md): Redis memory per account, key and event, and
changes per second per primary.

Run with ``make bench-scale``. An embedded Redis configured as in production
(``appendonly yes``, ``appendfsync always``, ``noeviction``) with one replica:

1. **Memory.** ``--accounts`` accounts, each with the API enabled, 3 users, 4 secret
   keys (argon2id hashes, as stored) and 2 subnets per key, through the real ledger,
   projected by the real projector. ``used_memory`` before and after, and
   ``MEMORY USAGE`` of every key, summed by what the key is (log, account streams,
   heads, auth records, system log and its indexes). Then ``--events`` more events
   (a subnet allowed and removed, over and over) on those accounts: the growth per
   event, with its projection.
2. **Changes per second per primary.** ``--writers`` processes append changes (a
   subnet allowed or removed: one event, no argon2) through ``EventStore.append`` as
   fast as they can for ``--seconds``, each to its own accounts, with a projector
   running; ``KEYLEDGER_MIN_REPLICAS`` 0 and then 1 (the replica confirms every
   change). Redis's own CPU time (``INFO cpu``) per change gives the ceiling of one
   primary core, whatever the clients' machine.

3. **The cost curve** (``bench.curve``), on a separate embedded Redis: memory per key
   and per event, rebuild time and events/s with 1 and 2 workers, warm authentication
   with one key against 10,000 round-robin, a key's first request, and filtered
   ``/v1/logs`` pages, at growing sizes. ``--curve quick`` (the default: 1k keys with
   10k and 100k events, logs to 100k; a few minutes), ``--curve full`` (1k/10k, 10k/100k,
   100k/1M and logs to 1M: long), ``--curve only`` (quick, without parts 1 and 2),
   ``--curve full-only``, ``--curve none``.

Nothing here passes or fails: it reports.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import redis

from keyledger.adapters.embedded import EmbeddedRedis
from keyledger.adapters.keyspace import Keyspace
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from keyledger.domain import commands as cmd
from keyledger.domain.events import OPERATOR
from tests.conftest import RunningProjector


class Replica(EmbeddedRedis):
    def __init__(self, data_dir: Path, primary_port: int):
        super().__init__(data_dir, persistent=True)
        self.primary_port = primary_port

    def config(self) -> str:
        return super().config() + f"replicaof 127.0.0.1 {self.primary_port}\n"


def settings(url: str, namespace: str, min_replicas: int = 0) -> Settings:
    return Settings(
        redis_url=url,
        namespace=namespace,
        partitions=16,
        apply_timeout=0.0,
        rate_limit_per_minute=0,
        changes_per_minute=0,
        min_replicas=min_replicas,
    )


def wait_caught_up(client: redis.Redis, keys: Keyspace) -> None:
    while True:
        behind = 0
        for p in range(keys.partitions):
            last = client.xrevrange(keys.log(p), count=1)
            marks = client.mget([keys.checkpoint(n, p) for n in ("auth", "syslog")])
            behind += bool(last) and any(m != last[0][0] for m in marks)
        if not behind:
            return
        time.sleep(0.05)


def kind_of(keys: Keyspace, key: str) -> str:
    found = keys.projection_of(key)
    if found is not None:
        return f"{found.projection} {found.kind}"
    for suffix, name in (
        (":log", "log (per partition)"),
        (":events", "account events"),
        (":head", "account head"),
        (":meta", "meta"),
    ):
        if key.endswith(suffix):
            return name
    return "other: " + key.rsplit(":", 1)[-1]


def memory_by_kind(client: redis.Redis, keys: Keyspace) -> dict[str, tuple[int, int]]:
    """kind -> (keys, bytes by MEMORY USAGE)."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for key in client.scan_iter(match=f"{keys.namespace}:*", count=1000):
        total = totals[kind_of(keys, key)]
        total[0] += 1
        total[1] += int(client.memory_usage(key, samples=0) or 0)
    return {kind: (n, size) for kind, (n, size) in sorted(totals.items())}


def populate(container: Container, accounts: int) -> list[tuple[str, list[str]]]:
    ledger, made = container.ledger, []
    for a in range(accounts):
        account_id, owner, _ = ledger.register_account(
            f"Account {a}", "Ann Owner", f"ann{a}@example.com", OPERATOR
        )
        ledger.enable_api(account_id, OPERATOR)
        users = [owner]
        for u in range(2):
            users.append(
                ledger.add_user(account_id, f"User {u}", f"u{u}.{a}@x.io", "Viewer", OPERATOR)[0]
            )
        names = []
        for k in range(4):
            name = f"key-{a:05d}-{k:02d}"
            cidrs = (f"10.{k}.{a % 256}.0/24", f"10.{k + 100}.{a % 256}.0/24")
            ledger.create_secret_key(account_id, name, users[k % 3], cidrs, OPERATOR)
            names.append(name)
        made.append((account_id, names))
    return made


def churn(container: Container, made: list[tuple[str, list[str]]], events: int) -> None:
    """Subnets allowed and removed in turn: one event per change, through the ledger."""
    for n in range(events):
        pair = n // 2  # allowed, then removed
        account_id, names = made[pair % len(made)]
        name = names[(pair // len(made)) % len(names)]
        cidr = f"172.16.{pair % 256}.0/24"
        command = (
            cmd.AllowSourceSubnet(account_id=account_id, name=name, cidr=cidr)
            if n % 2 == 0
            else cmd.RemoveSourceSubnet(account_id=account_id, name=name, cidr=cidr)
        )
        container.ledger.execute(command, OPERATOR)


def measure_memory(url: str, accounts: int, events: int) -> None:
    namespace = f"mem{uuid.uuid4().hex[:6]}"
    container = build(settings(url, namespace))
    client = redis.Redis.from_url(url, decode_responses=True)
    before = int(client.info("memory")["used_memory"])
    with RunningProjector(container):
        started = time.monotonic()
        made = populate(container, accounts)
        wait_caught_up(client, container.keyspace)
        populated = time.monotonic() - started
    after = int(client.info("memory")["used_memory"])
    kinds = memory_by_kind(client, container.keyspace)
    logged = sum(int(client.xlen(container.keyspace.log(p))) for p in range(16))
    print(f"\n## Memory: {accounts} accounts, {logged} events ({populated:.0f} s to make)")
    print(
        f"used_memory grew {after - before:,} bytes: {(after - before) / accounts:,.0f} per account"
    )
    print("| key kind | keys | bytes | bytes per key |")
    print("|---|---|---|---|")
    for kind, (n, size) in kinds.items():
        print(f"| {kind} | {n:,} | {size:,} | {size / n:,.0f} |")
    with RunningProjector(container):
        before = int(client.info("memory")["used_memory"])
        started = time.monotonic()
        churn(container, made, events)
        wait_caught_up(client, container.keyspace)
        took = time.monotonic() - started
    after = int(client.info("memory")["used_memory"])
    print(
        f"\n{events:,} more events (subnet allowed/removed, {events / took:,.0f}/s through the "
        f"ledger in one thread): used_memory grew {(after - before) / events:,.0f} bytes per "
        "event (log, account stream, system log and its indexes)"
    )
    grown = memory_by_kind(client, container.keyspace)
    for kind in grown:
        size0, size1 = kinds.get(kind, (0, 0))[1], grown[kind][1]
        if size1 != size0:
            print(f"  {kind}: {(size1 - size0) / events:,.1f} bytes per event")


def write_loop(url: str, namespace: str, min_replicas: int, seconds: float, out: Any) -> None:
    container = build(settings(url, namespace, min_replicas))
    ledger = container.ledger
    account_id, owner, _ = ledger.register_account("W", "Owner", "w@x.io", OPERATOR)
    ledger.add_user(account_id, "U", "u@x.io", "Viewer", OPERATOR)
    ledger.create_secret_key(account_id, "writer-key-01", owner, (), OPERATOR)
    done, n = 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        cidr = f"172.16.{(n // 2) % 256}.0/24"
        command: cmd.Command = (
            cmd.AllowSourceSubnet(account_id=account_id, name="writer-key-01", cidr=cidr)
            if n % 2 == 0
            else cmd.RemoveSourceSubnet(account_id=account_id, name="writer-key-01", cidr=cidr)
        )
        ledger.execute(command, OPERATOR)
        done += 1
        n += 1
    out.put(done)


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def measure_writes(url: str, writers: int, seconds: float, min_replicas: int) -> float:
    namespace = f"w{uuid.uuid4().hex[:6]}"
    container = build(settings(url, namespace))
    keyspace = container.keyspace
    client = redis.Redis.from_url(url, decode_responses=True)
    queue: Any = multiprocessing.Queue()
    with RunningProjector(container):
        cpu = redis_cpu(client)
        started = time.monotonic()
        procs = [
            multiprocessing.Process(
                target=write_loop, args=(url, namespace, min_replicas, seconds, queue)
            )
            for _ in range(writers)
        ]
        for proc in procs:
            proc.start()
        done = sum(queue.get() for _ in procs)
        for proc in procs:
            proc.join()
        wait_caught_up(client, keyspace)
        elapsed = time.monotonic() - started
        cpu = redis_cpu(client) - cpu
    rate = done / seconds
    per_change = cpu / done
    print(
        f"| {min_replicas} | {writers} | {rate:,.0f} | {per_change * 1e6:,.0f} us | "
        f"{1 / per_change:,.0f} |  (elapsed {elapsed:.1f} s)"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--curve", choices=["quick", "full", "only", "full-only", "none"], default="quick"
    )
    args = parser.parse_args()
    if args.curve not in ("only", "full-only"):
        capacity(args)
    if args.curve != "none":
        from bench import curve

        with tempfile.TemporaryDirectory() as tmp:
            server = EmbeddedRedis(Path(tmp) / "curve", persistent=False)
            try:
                curve.run(server.start(), full=args.curve.startswith("full"))
            finally:
                server.stop()


def capacity(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        primary = EmbeddedRedis(Path(tmp) / "primary", persistent=True)
        url = primary.start()
        replica = Replica(Path(tmp) / "replica", primary.port)
        try:
            replica.start()
            replica_client = redis.Redis(port=replica.port, decode_responses=True)
            while replica_client.info("replication").get("master_link_status") != "up":
                time.sleep(0.05)
            measure_memory(url, args.accounts, args.events)
            print("\n## Changes per second, one primary (appendfsync always), projector running")
            print(
                "| min replicas | writer processes | changes/s | Redis CPU per change | "
                "changes/s per Redis core |"
            )
            print("|---|---|---|---|---|")
            rates = [measure_writes(url, args.writers, args.seconds, m) for m in (0, 1, 0, 1)]
            print(
                f"medians: min replicas 0: {statistics.median(rates[0::2]):,.0f}/s, "
                f"1: {statistics.median(rates[1::2]):,.0f}/s"
            )
        finally:
            replica.stop()
            primary.stop()


if __name__ == "__main__":
    main()
