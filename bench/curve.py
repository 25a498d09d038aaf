"""The cost curve: how keyledger's costs grow with its data (``make bench-scale``).

For each point (secret keys, events) a fresh namespace is seeded with
``keyledger dev seed``'s generator (``keyledger.seed``: 4 keys an account, the rest of
the events spread as churn) and projected, then measured:

- Redis memory per secret key (its authentication record and subnets) and per event
  (the log, the account stream, the system log and its indexes), by ``MEMORY USAGE``;
- a rebuild of both projections as an RQ job with 1, then 2, ``keyledger worker``
  processes: seconds and log entries per second of the whole job;
- warm authentication throughput in process (the real ``Authenticator``, caches warm)
  with one key (the median of 20 keys of the set, each used alone: ``one_key``), and
  with up to 10,000 distinct keys used round-robin: medians of 5 rounds measuring both
  back to back, and the median of the rounds' ratios;
- the added latency of a key's first request in a process (a fresh container: argon2id
  and the Redis lookup), p50 over 200 keys, minus the same key's warm latency.

``/v1/logs`` page latency filtered by resource is ``bench.logs``'s measurement, run at
the same event counts as one account's log. Targets are printed beside the figures;
nothing passes or fails.
"""

from __future__ import annotations

import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

import keyledger.workers.jobs as jobs
from bench.run import drop_namespace
from bench.scale import settings
from keyledger.bootstrap import Container, build
from keyledger.seed import Plan, Seeder

QUICK = [(1_000, 10_000), (1_000, 100_000)]
FULL = [(1_000, 10_000), (10_000, 100_000), (100_000, 1_000_000)]
KEYS_PER_ACCOUNT = 4
DISTINCT = 10_000
#: Keys measured one at a time for the one-key baseline (``one_key``).
SAMPLED = 20
#: Rounds of (one key, distinct keys) measured back to back (``keys_ratio``).
ROUNDS = 5
KEYLEDGER = str(Path(sys.executable).with_name("keyledger"))


@dataclass
class Point:
    keys: int
    events: int
    figures: dict[str, Any]


def memory(client: redis.Redis, container: Container, keys: int, events: int) -> dict[str, float]:
    space = container.keyspace
    per_key, per_event = 0, 0
    for key in client.scan_iter(match=space.every_key(), count=1000):
        found = space.projection_of(key)
        size = int(client.memory_usage(key, samples=0) or 0)
        if found is not None and found.kind in ("key", "subnets"):
            per_key += size
        elif (found is not None and found.projection == "syslog") or key.endswith(
            (":log", ":events")
        ):
            per_event += size
    return {"bytesPerKey": per_key / keys, "bytesPerEvent": per_event / events}


def rebuild(url: str, container: Container, workers: int) -> dict[str, Any]:
    """A rebuild job run by ``workers`` ``keyledger worker`` processes."""
    queue_name = f"curve-{uuid.uuid4().hex[:6]}"
    client = redis.Redis.from_url(url)
    env = {**os.environ, "REDIS_URL": url, "KEYLEDGER_NAMESPACE": container.keyspace.namespace}
    env["KEYLEDGER_LOG_LEVEL"] = "WARNING"
    procs = [
        subprocess.Popen(
            [KEYLEDGER, "worker", "--queue", queue_name],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        queue = Queue(queue_name, connection=client, serializer=JSONSerializer)
        while len(Worker.all(queue=queue)) < workers:
            time.sleep(0.05)
        job = jobs.enqueue_rebuild(
            client, container.redis, container.keyspace, ("auth", "syslog"), queue=queue_name
        )
        while job.get_status(refresh=True) not in ("finished", "failed"):
            time.sleep(0.05)
        if job.get_status() != "finished":
            raise RuntimeError(jobs.describe(job).get("error"))
        return dict(job.return_value())
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait()


def authenticate(container: Container, key: dict[str, str]) -> None:
    allowed = container.authenticator.authenticate(
        method="GET",
        path="/v1/logs",  # every role that may hold a key may read the system log
        source_ip="127.0.0.1",
        account_key=key["accountKey"],
        secret_key=key["secretKey"],
    ).allowed
    if not allowed:
        raise RuntimeError(f"a seeded key was refused: {key['name']}")


def throughput(container: Container, keys: list[dict[str, str]], calls: int) -> float:
    for key in keys:  # warm
        authenticate(container, key)
    started = time.perf_counter()
    for n in range(calls):
        authenticate(container, keys[n % len(keys)])
    return calls / (time.perf_counter() - started)


def one_key(container: Container, keys: list[dict[str, str]], calls: int) -> float:
    """Throughput with one key, for keys like the distinct ones: the median over
    ``SAMPLED`` keys spread across the set, each used alone. Seeded keys differ (about
    half have an allow list, which the source-address policy checks at each request):
    compared with one key picked at random, the ratio would measure that key's shape,
    not what using many keys costs."""
    step = max(1, len(keys) // SAMPLED)
    sampled = keys[::step][:SAMPLED]
    return statistics.median(
        throughput(container, [key], max(2_000, calls // SAMPLED)) for key in sampled
    )


def keys_ratio(
    container: Container, keys: list[dict[str, str]], calls: int
) -> tuple[float, float, float]:
    """One key's throughput, the distinct keys' and their ratio: medians over ``ROUNDS``
    rounds, each measuring both back to back (a shared machine's noise moves a single
    pair of runs by more than the 10% the target allows)."""
    ones, manys = [], []
    for _ in range(ROUNDS):
        ones.append(one_key(container, keys, calls))
        manys.append(throughput(container, keys, calls))
    ratios = [many / one for one, many in zip(ones, manys, strict=True)]
    return statistics.median(ones), statistics.median(manys), statistics.median(ratios)


def first_request(url: str, namespace: str, keys: list[dict[str, str]]) -> float:
    """p50 of (first request of a key in a fresh process state) - (its warm request), ms."""
    fresh = build(settings(url, namespace))
    added = []
    for key in keys:
        started = time.perf_counter()
        authenticate(fresh, key)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        authenticate(fresh, key)
        added.append((cold - (time.perf_counter() - started)) * 1000)
    return statistics.median(added)


def measure(url: str, keys: int, events: int) -> Point:
    namespace = f"curve{uuid.uuid4().hex[:6]}"
    container = build(settings(url, namespace))
    client = redis.Redis.from_url(url, decode_responses=True)
    secrets = io.StringIO()  # the bench's memory only: never printed
    accounts = max(1, keys // KEYS_PER_ACCOUNT)
    started = time.monotonic()
    summary = Seeder(container, secrets).run(Plan(accounts, KEYS_PER_ACCOUNT, events))
    seeded = time.monotonic() - started
    generated = [json.loads(line) for line in secrets.getvalue().splitlines()]
    del secrets
    figures: dict[str, Any] = {"seedSeconds": seeded, "events": summary.events}
    figures.update(memory(client, container, summary.keys, summary.events))
    for workers in (1, 2):
        result = rebuild(url, container, workers)
        figures[f"rebuild{workers}"] = (result["seconds"], result["jobEventsPerSecond"])
    distinct = generated[:DISTINCT]
    calls = max(20_000, 2 * len(distinct))
    figures["auth"] = (*keys_ratio(container, distinct, calls), len(distinct))
    figures["firstRequestMs"] = first_request(url, namespace, generated[-200:])
    drop_namespace(client, namespace)
    return Point(keys, events, figures)


def header() -> None:
    print("\n## The cost curve (shared 2-core machine: compare within one run)")
    print(
        "| secret keys | events | seed s | bytes/key | bytes/event | rebuild 1 worker "
        "(s, events/s) | rebuild 2 workers (s, events/s) | auth/s one key | auth/s N keys "
        "round-robin (ratio) | first request added, p50 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)


def row(p: Point) -> None:
    """One point's row, printed as soon as it is measured (the full curve runs long)."""
    f = p.figures
    one, many, ratio, distinct = f["auth"]
    print(
        f"| {p.keys:,} | {f['events']:,} | {f['seedSeconds']:.0f} | {f['bytesPerKey']:,.0f} "
        f"| {f['bytesPerEvent']:,.0f} | {f['rebuild1'][0]:.1f} s, {f['rebuild1'][1]:,} "
        f"| {f['rebuild2'][0]:.1f} s, {f['rebuild2'][1]:,} | {one:,.0f} "
        f"| {many:,.0f} with {distinct:,} ({ratio:.2f}x) | {f['firstRequestMs']:.2f} |",
        flush=True,
    )


def targets() -> None:
    print(
        "\ntargets: rebuild >= 100,000 events/s; N = 10,000 distinct keys >= 0.90x of one "
        "key; first request added <= 2 ms p50; filtered log pages within 2x from 1k to 1M "
        "entries (the table below)"
    )


def logs(url: str, sizes: list[int], requests: int = 100) -> None:
    """``bench.logs`` at these sizes: the filtered pages only."""
    from bench.logs import drop as drop_account
    from bench.logs import queries, seeded, timed

    wanted = [
        "logs resourceId=<busy key> limit=100",
        "logs resourceId=<busy key> limit=100 offset=N/2",
        "logs resourceId=<user, 2 entries> limit=100",
        "logs time window (middle fifth) limit=100",
    ]
    medians: dict[str, list[float]] = {name: [] for name in wanted}
    for size in sizes:
        account = seeded(url, size)
        calls = queries(account)
        for name in wanted:
            samples: list[float] = []
            timed(calls[name], requests, samples)
            medians[name].append(statistics.median(samples))
        drop_account(account)
    print(
        "\n| /v1/logs, one account's log of | "
        + " | ".join(f"{s:,}" for s in sizes)
        + " | largest / smallest |"
    )
    print("|---|" + "---|" * len(sizes) + "---|")
    for name, values in medians.items():
        cells = " | ".join(f"{v:.2f} ms" for v in values)
        print(f"| {name} | {cells} | {max(values) / min(values):.2f}x (target <= 2x) |")


def run(url: str, full: bool) -> None:
    sizes = FULL if full else QUICK
    header()
    for keys, events in sizes:
        row(measure(url, keys, events))
    targets()
    logs(url, [1_000, 10_000, 100_000, 1_000_000] if full else [1_000, 10_000, 100_000])
