"""What a page of the system log and of the event history costs as one account's log grows.

Run with ``make bench-logs`` (``--sizes 1000,10000,100000,1000000`` for the deep run).
For each size an account gets that many events, appended in bulk through the real
event store (a key's subnet allowed and removed, over and over, among a few users
and keys), then projected by the real projector. Each request then runs through the
real web app in process (authentication cached, so what is measured is the page):
the median and p90 of ``--requests`` calls, in milliseconds. The issue's target is
that filtered pages stay within 2x of each other from 1k to 1M entries. The figures
of the scan that served these filters before the index are printed beside them,
and the Redis memory the index adds per system-log entry.

Uses REDIS_URL when set, otherwise an embedded Redis configured as in production.
Nothing here passes or fails: it reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.run import drop_namespace, redis_server
from keyledger import create_app
from keyledger.adapters.systemlog import LogPage
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from keyledger.domain import events as ev
from keyledger.domain.events import OPERATOR
from keyledger.workers.projector import Projector

BUSY, QUIET = "busy-key-00001", "quiet-key-0001"


@dataclasses.dataclass
class Account:
    container: Container
    account_id: str
    headers: dict[str, str]
    quiet_user: str
    head: int


def seeded(url: str, size: int) -> Account:
    """An account with ``size`` events: most on ``BUSY``, a few on ``QUIET`` and a user."""
    settings = Settings(
        redis_url=url,
        namespace=f"benchlog{uuid.uuid4().hex[:6]}",
        partitions=16,
        apply_timeout=0.0,
        rate_limit_per_minute=0,
        changes_per_minute=0,
    )
    container = build(settings)
    ledger = container.ledger
    account_id, owner, _ = ledger.register_account("Deep", "Ann", "ann@x.io", OPERATOR)
    account_key, _ = ledger.enable_api(account_id, OPERATOR)
    secret, _ = ledger.create_secret_key(account_id, BUSY, owner, (), OPERATOR)
    ledger.create_secret_key(account_id, QUIET, owner, ("10.1.0.0/16",), OPERATOR)
    quiet_user, _ = ledger.add_user(account_id, "Vic", "vic@x.io", "Viewer", OPERATOR)
    state = ledger.accounts.load(account_id)
    version, key, allowed = state.version, state.key(BUSY), False
    while version < size:
        batch: list[ev.Event] = []
        for _ in range(min(1000, size - version)):
            kind = ev.SourceSubnetRemoved if allowed else ev.SourceSubnetAllowed
            batch.append(
                kind(
                    account_id=account_id,
                    version=version + len(batch) + 1,
                    time=datetime.now(UTC),
                    actor=OPERATOR,
                    name=BUSY,
                    key_id=key.key_id,
                    cidr="10.99.0.0/16",
                )
            )
            allowed = not allowed
        container.store.append(account_id, version, batch)
        version += len(batch)
    if allowed:  # the key must stay usable from 127.0.0.1
        ledger.remove_subnet(account_id, BUSY, "10.99.0.0/16", OPERATOR)
    ledger.update_user(account_id, quiet_user, None, "Owner", OPERATOR)
    projector = Projector(container.redis, container.keyspace, consumer="bench")
    projector.setup()
    projector.catch_up(container.keyspace.partition_of(account_id))
    headers = {"x-api-key": account_key or "", "x-api-secret-key": secret}
    return Account(container, account_id, headers, quiet_user, container.store.version(account_id))


def returned(answer: object) -> int:
    """How many entries or events a response (or a reader's page) holds."""
    if isinstance(answer, LogPage):
        return len(answer.entries)
    body = answer.get_json()  # type: ignore[attr-defined]
    return len(body.get("entries", body.get("events", [])))


def timed(call: Callable[[], object], requests: int, samples: list[float]) -> int:
    """Add ``requests`` latencies (ms) of ``call`` to ``samples``; the entries its page held."""
    size = returned(call())  # warm
    for _ in range(requests):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return size


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def queries(account: Account) -> dict[str, Callable[[], object]]:
    """The requests measured, by name, each a call that makes one."""
    client = create_app({"container": account.container, "TESTING": True}).test_client()
    keys, redis = account.container.keyspace, account.container.redis
    stream = keys.syslog(account.account_id)
    length = int(redis.xlen(stream))
    index = keys.syslog_index(account.account_id)
    low, high = (redis.zrange(index, rank, rank)[0] for rank in (length * 2 // 5, length * 3 // 5))
    window = f"startTime={iso(int(low.split('-')[0]))}&endTime={iso(int(high.split('-')[0]))}"

    def get(url: str) -> Callable[[], object]:
        def call() -> object:
            response = client.get(url, headers=account.headers)
            assert response.status_code == 200, (url, response.get_json())
            return response

        return call

    reader = account.container.system_log
    middle = max(length // 2 - 100, 0)
    calls: dict[str, Callable[[], object]] = {
        "logs resourceId=<user, 2 entries> limit=100": get(
            f"/v1/logs?limit=100&resourceId={account.quiet_user}"
        ),
        "logs resourceId=<busy key> limit=100": get(f"/v1/logs?limit=100&resourceId={BUSY}"),
        "logs resourceId=<busy key> limit=100 offset=N/2": get(
            f"/v1/logs?limit=100&offset={middle}&resourceId={BUSY}"
        ),
        "logs resourceId=nomatch limit=1": get("/v1/logs?limit=1&resourceId=nomatch"),
        "logs time window (middle fifth) limit=100": get(f"/v1/logs?limit=100&{window}"),
        "logs limit=100 offset=N-100": get(f"/v1/logs?limit=100&offset={max(length - 100, 0)}"),
        "events after=N/2 limit=100 (no cursor)": get(
            f"/v1/events?after={account.head // 2}&limit=100"
        ),
        "events after=2^53 limit=1": get("/v1/events?after=9007199254740992&limit=1"),
        "reader only: resourceId=<busy key> limit=100 offset=N/2": lambda: reader.page(
            account.account_id, offset=middle, limit=100, resource_id=BUSY
        ),
        "scan (before the index): resourceId=nomatch": lambda: reader._scan(
            account.account_id, 0, 1, "-", "+", "nomatch"
        ),
        "scan (before the index): resourceId=<user>": lambda: reader._scan(
            account.account_id, 0, 100, "-", "+", account.quiet_user
        ),
    }
    return calls


def memory(account: Account) -> dict[str, float]:
    """Bytes per system-log entry: the stream, the account's index, the busy key's index."""
    keys, redis, a = account.container.keyspace, account.container.redis, account.account_id
    length = int(redis.xlen(keys.syslog(a)))
    busy = int(redis.zcard(keys.syslog_resource_index(a, BUSY)))
    return {
        "syslog stream": redis.memory_usage(keys.syslog(a), samples=0) / length,
        "account index": redis.memory_usage(keys.syslog_index(a), samples=0) / length,
        "busy key index": redis.memory_usage(keys.syslog_resource_index(a, BUSY), samples=0) / busy,
    }


def drop(account: Account) -> None:
    drop_namespace(account.container.redis, account.container.settings.namespace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000", help="events in the account")
    parser.add_argument("--requests", type=int, default=200, help="requests per figure")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as url:
        accounts = {}
        for size in sizes:
            started = time.monotonic()
            accounts[size] = seeded(url, size)
            print(f"{size:>9,} events: seeded and projected in {time.monotonic() - started:.1f} s")
        calls = {size: queries(account) for size, account in accounts.items()}
        samples: dict[tuple[str, int], list[float]] = {}
        held: dict[tuple[str, int], int] = {}
        # Rounds interleave the sizes, so the machine's noise hits each of them alike.
        for _ in range(args.rounds):
            for name in calls[sizes[0]]:
                for size in sizes:
                    scan = name.startswith("scan")
                    per_round = args.requests // args.rounds
                    if scan:  # the scan reads the whole log: fewer of them at depth
                        per_round = max(1, per_round // (1 + size // 10_000))
                    got = samples.setdefault((name, size), [])
                    held[name, size] = timed(calls[size][name], per_round, got)
        memories = {size: memory(account) for size, account in accounts.items()}
        for account in accounts.values():
            drop(account)
    print()
    print("| request | " + " | ".join(f"{s:,} events" for s in sizes) + " | largest / smallest |")
    print("|---|" + "---|" * len(sizes) + "---|")
    for name in calls[sizes[0]]:
        medians = [statistics.median(samples[name, s]) for s in sizes]
        cells = []
        for size, median in zip(sizes, medians, strict=True):
            ordered = sorted(samples[name, size])
            p90 = ordered[int(0.9 * (len(ordered) - 1))]
            cells.append(f"{median:.2f} (p90 {p90:.2f}; {held[name, size]})")
        print(f"| {name} | {' | '.join(cells)} | {max(medians) / min(medians):.2f}x |")
    print()
    print(
        "median (p90; entries in the page) milliseconds per request; "
        "target: filtered pages within 2x of each other across sizes"
    )
    print()
    print("| bytes per entry | " + " | ".join(f"{s:,}" for s in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name in memories[sizes[0]]:
        print(f"| {name} | " + " | ".join(f"{memories[s][name]:.0f}" for s in sizes) + " |")


if __name__ == "__main__":
    main()
