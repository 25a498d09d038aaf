"""keyledger benchmarks: prints one table of figures, targets and ratios.

Run with ``make bench``. Load comes from ``wrk`` (Debian package ``wrk``, 2
threads, 8 keep-alive connections) in a separate process against the Procfile's
web server serving the real app; the in-process figures use the real adapters
against a real Redis. Nothing here passes or fails: it reports.

The HTTP figures are read against a fixed yardstick measured in the same run,
interleaved with them: a bare WSGI "hello" (``bench/hello.py``) under gunicorn
with sync workers (2 processes, a new connection per request). On a shared
machine absolute figures swing by 2x from minute to minute; the ratios hold. Uses REDIS_URL when set, otherwise starts an embedded Redis configured
as in production (appendonly yes, appendfsync always).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from keyledger.adapters.embedded import EmbeddedRedis, free_port
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from keyledger.domain.events import OPERATOR
from tests.e2e.harness import procfile_web  # the server ``make run`` uses, as the tests do

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass
class Row:
    figure: str
    value: float
    unit: str
    target: str
    ok: bool | None
    note: str = ""


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(workdir / "redis", persistent=True)
    try:
        yield server.start()
    finally:
        server.stop()


def wait_until_up(url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.1)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer; see {log}")


@contextmanager
def started(argvs: list[tuple[list[str], dict[str, str], str]], workdir: Path) -> Iterator[None]:
    """Start each (argv, env, url) process, wait until each url answers, stop them all."""
    log_path = workdir / "server.log"
    log = log_path.open("a")
    procs = [
        subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        for argv, env, _ in argvs
    ]
    try:
        for _, _, url in argvs:
            if url:
                wait_until_up(url, log_path)
        yield
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=40)


def web(env: dict[str, str], port: int) -> tuple[list[str], dict[str, str], str]:
    """The Procfile's web server on ``port``."""
    settings = {"HOST": "127.0.0.1", "PORT": str(port)}
    return (
        ["sh", "-c", f"exec {procfile_web()}"],
        {**env, **settings},
        f"http://127.0.0.1:{port}/healthz",
    )


def yardstick(env: dict[str, str], port: int) -> tuple[list[str], dict[str, str], str]:
    """The fixed yardstick: bench/hello.py under gunicorn, 2 sync workers."""
    argv = [
        str(BIN / "gunicorn"),
        "--no-control-socket",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--worker-class",
        "sync",
        "bench.hello:app",
    ]
    return argv, env, f"http://127.0.0.1:{port}/"


def projector(env: dict[str, str]) -> tuple[list[str], dict[str, str], str]:
    return [str(BIN / "keyledger"), "projector"], env, ""


@contextmanager
def processes(env: dict[str, str], port: int, workdir: Path) -> Iterator[None]:
    with started([web(env, port), projector(env)], workdir):
        yield


def wrk(url: str, headers: dict[str, str], seconds: int, connections: int) -> tuple[float, float]:
    """Requests/s and p99 latency (ms) from wrk; non-2xx responses make the run invalid."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx responses while benchmarking {url}:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    latency = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    return rate, latency


@contextmanager
def refusals_named(log: Path) -> Iterator[None]:
    """A run that met non-2xx answers also shows the servers' access lines for them."""
    try:
        yield
    except RuntimeError as exc:
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        named = [line for line in lines if re.search(r'HTTP/[\d.]+" [3-5]\d\d ', line)]
        raise RuntimeError(
            f"{exc}\naccess lines of those answers:\n" + "\n".join(named[-20:])
        ) from exc


def bootstrap(container: Container) -> tuple[str, str, str]:
    ledger = container.ledger
    account_id, owner, _ = ledger.register_account("Bench", "Ann", "ann@example.com", OPERATOR)
    account_key, _ = ledger.enable_api(account_id, OPERATOR)
    secret, _ = ledger.create_secret_key(account_id, "bench-key-0001", owner, (), OPERATOR)
    assert account_key is not None
    return account_id, account_key, secret


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(fn: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def ratio_row(
    figure: str, runs: dict[str, list[float]], top: str, bottom: str, target: float, what: str
) -> Row:
    """The median over rounds of top/bottom (each round's pair measured back to back)."""
    ratio = statistics.median(t / b for t, b in zip(runs[top], runs[bottom], strict=True))
    return Row(
        figure,
        ratio,
        f"x {what}",
        f">= {target:.2f} x {what}",
        ratio >= target,
        f"median of {len(runs[top])} rounds",
    )


def http_rows(
    env: dict[str, str], keys: dict[str, str], seconds: int, workdir: Path, rounds: int = 4
) -> list[Row]:
    """Every HTTP figure, interleaved round by round so the machine's noise hits all alike:
    the yardstick, keyledger with the rate limit off, and a second keyledger with it on."""
    ports = {"yardstick": free_port(), "off": free_port(), "on": free_port()}
    limited = {**env, "KEYLEDGER_RATE_LIMIT_PER_MINUTE": str(10**9)}
    servers = [
        yardstick(env, ports["yardstick"]),
        web(env, ports["off"]),
        web(limited, ports["on"]),
    ]
    check = {**keys, "X-Original-Method": "GET", "X-Original-URI": "/orders"}
    targets: dict[str, tuple[str, dict[str, str]]] = {
        "yardstick": (f"http://127.0.0.1:{ports['yardstick']}/", {})
    }
    for limit in ("off", "on"):
        base = f"http://127.0.0.1:{ports[limit]}"
        targets[f"healthz {limit}"] = (f"{base}/healthz", {})
        targets[f"fwd {limit}"] = (f"{base}/v1/auth/check", check)
        targets[f"who {limit}"] = (f"{base}/v1/", keys)
    rates: dict[str, list[float]] = {name: [] for name in targets}
    p99s: dict[str, list[float]] = {name: [] for name in targets}
    with started(servers, workdir), refusals_named(workdir / "server.log"):
        for url, headers in targets.values():
            wrk(url, headers, 2, 8)  # warm every worker's caches
        for number in range(rounds):
            # Every other round in reverse: a pair measured slots apart (the limit on and
            # off) meets the machine's drift from both sides, not always the same one.
            order = list(targets.items())
            for name, (url, headers) in order if number % 2 == 0 else reversed(order):
                rate, p99 = wrk(url, headers, seconds, 8)
                rates[name].append(rate)
                p99s[name].append(p99)

    def measured(figure: str, name: str, note: str = "") -> Row:
        p99 = statistics.median(p99s[name])
        return Row(
            figure,
            statistics.median(rates[name]),
            "req/s",
            "reported",
            None,
            f"p99 {p99:.2f} ms{note}",
        )

    return [
        measured("yardstick: hello, gunicorn sync x2", "yardstick", ", new connection each"),
        measured("GET /healthz", "healthz off"),
        measured("GET /v1/auth/check (forward auth)", "fwd off"),
        measured("GET /v1/", "who off"),
        ratio_row("forward auth / yardstick", rates, "fwd off", "yardstick", 1.5, "yardstick"),
        ratio_row("GET /v1/ / yardstick", rates, "who off", "yardstick", 0.6, "yardstick"),
        ratio_row("forward auth / healthz", rates, "fwd off", "healthz off", 0.90, "healthz"),
        ratio_row("GET /v1/ / healthz", rates, "who off", "healthz off", 0.80, "healthz"),
        ratio_row("forward auth, rate limit on / off", rates, "fwd on", "fwd off", 0.85, "off"),
        ratio_row("GET /v1/, rate limit on / off", rates, "who on", "who off", 0.85, "off"),
    ]


def first_request_rows(container: Container, accounts: int = 40) -> list[Row]:
    """The added latency of a key's first request in a process: the same decision, first
    with both keys new to the process (Redis lookup, two argon2 verifications), then warm.

    The keys are all created, and in effect, before the first is used: the case the
    figure is for is a process that starts (a deploy, a restart) and meets keys that
    exist, not a key used within a millisecond of its creation, while the projector
    that has just applied it still works on the same two cores."""
    auth = container.authenticator
    container.ledger.apply_timeout = 5.0  # each change in effect before its first request
    created: list[tuple[str, str]] = []
    for n in range(accounts):
        account_id, owner, _ = container.ledger.register_account(
            f"First {n}", "Fay", f"fay{n}@example.com", OPERATOR
        )
        account_key, _ = container.ledger.enable_api(account_id, OPERATOR)
        secret, _ = container.ledger.create_secret_key(
            account_id, f"first-key-{n:04d}", owner, (), OPERATOR
        )
        created.append((account_key, secret))
    added: list[float] = []
    for account_key, secret in created:

        def decide(account_key: str = account_key, secret: str = secret) -> object:
            return auth.authenticate(
                method="GET",
                path="/v1/",
                source_ip="127.0.0.1",
                account_key=account_key,
                secret_key=secret,
            )

        start = time.perf_counter_ns()
        decision = decide()
        first = (time.perf_counter_ns() - start) / 1000
        assert decision.allowed, decision  # type: ignore[attr-defined]
        warm = statistics.median(timed(decide, 20))
        added.append((first - warm) / 1000)
    p50 = statistics.median(added)
    return [
        Row(
            "first request of a key, added",
            p50,
            "ms p50",
            "<= 2 ms",
            p50 <= 2,
            f"p90 {percentile(added, 0.9):.2f} ms over {accounts} keys (both keys cold)",
        )
    ]


def decision_rows(container: Container, account_key: str, secret: str) -> list[Row]:
    auth = container.authenticator

    def decide() -> object:
        return auth.authenticate(
            method="GET",
            path="/v1/",
            source_ip="127.0.0.1",
            account_key=account_key,
            secret_key=secret,
        )

    assert decide().allowed  # type: ignore[attr-defined]
    container.auth_cache.wait_until_subscribed()
    timed(decide, 2_000)  # warm
    # Three runs of 20,000; the median run's p99 (one run can catch a neighbour's burst).
    runs = sorted((timed(decide, 20_000) for _ in range(3)), key=lambda r: percentile(r, 0.99))
    samples = runs[1]
    p99 = percentile(samples, 0.99)
    one, two = threaded_rate(decide, 1), threaded_rate(decide, 2)
    return [
        Row(
            "in-process decision, warm",
            p99,
            "us p99",
            "< 100 us",
            p99 < 100,
            f"p50 {statistics.median(samples):.1f} us",
        ),
        Row(
            "warm decisions, 2 threads / 1",
            two / one,
            "x 1 thread",
            "reported (GIL: ~1)",
            None,
            f"{one:,.0f} and {two:,.0f} decisions/s; a lock convoy made it 0.22 x",
        ),
    ]


def threaded_rate(decide: Callable[[], object], threads: int, calls: int = 40_000) -> float:
    """Decisions per second with ``threads`` threads deciding at once: one process's
    threads share the GIL, so about the rate of one thread, unless they queue on locks
    or hand the GIL to each other at every decision (docs/operators.md, "Performance")."""

    def run() -> None:
        for _ in range(calls // threads):
            decide()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return calls / (time.perf_counter() - started)


def lag_rows(container: Container, account_id: str, changes: int) -> list[Row]:
    ledger, watch = container.ledger, container.ledger.watch
    ledger.apply_timeout = 0.0
    lags = []
    for n in range(changes):
        state = ledger.state(account_id)
        from keyledger.domain import commands as cmd
        from keyledger.domain.account import Recorder
        from keyledger.domain.decisions import decide

        events = decide(
            state,
            cmd.AddUser(
                account_id=account_id,
                user_id=f"u{n}",
                name=f"User {n}",
                email=f"u{n}@x.io",
                role="Viewer",
            ),
            Recorder(state, ledger.clock(), OPERATOR),
            ledger.limits,
        )
        appended = ledger.store.append(account_id, state.version, events)
        start = time.perf_counter()
        watch.wait(appended.partition, appended.last_log_id, 5.0)
        lags.append((time.perf_counter() - start) * 1000)
        time.sleep(0.005)  # a steady stream, not a burst
    p99 = percentile(lags, 0.99)
    return [
        Row(
            "projector lag, steady changes",
            p99,
            "ms p99",
            "< 10 ms",
            p99 < 10,
            f"p50 {statistics.median(lags):.2f} ms over {changes} changes",
        )
    ]


def synthetic_history(container: Container, accounts: int, events_per_account: int) -> int:
    """Append a realistic mix of events quickly (100 per script call); returns the count."""
    from keyledger.domain import events as ev

    store, now, total = container.store, container.ledger.clock(), 0
    hash_ = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
    for a in range(accounts):
        account_id = f"bench{a:05d}"
        tag = f"{container.keyspace.partition_of(account_id):02x}"
        specs: list[tuple[type[ev.Event], dict[str, object]]] = [
            (ev.AccountRegistered, {"name": f"Account {a}", "owner_user_id": "owner"}),
            (
                ev.UserAdded,
                {"user_id": "owner", "name": "Owner", "email": "o@x.io", "role": "Owner"},
            ),
            (ev.ApiEnabled, {}),
            (ev.AccountKeyIssued, {"key_id": f"{tag}{a:014x}", "key_hash": hash_}),
        ]
        for n in range(1, events_per_account - len(specs) + 1):
            if n <= 20:
                specs.append(
                    (
                        ev.SecretKeyCreated,
                        {
                            "name": f"key-{a:05d}-{n:04d}",
                            "key_id": f"{tag}{a:08x}{n:06x}",
                            "user_id": "owner",
                            "user_name": "Owner",
                            "key_hash": hash_,
                            "allowed_source_ips": (),
                        },
                    )
                )
            elif n % 3 == 0:
                specs.append(
                    (
                        ev.SourceSubnetAllowed,
                        {
                            "name": f"key-{a:05d}-{n % 20 + 1:04d}",
                            "key_id": f"{tag}{a:08x}{n % 20 + 1:06x}",
                            "cidr": f"10.{n // 256 % 256}.{n % 256}.0/24",
                        },
                    )
                )
            else:
                specs.append(
                    (
                        ev.UserRenamed,
                        {"user_id": "owner", "name": f"Owner {n}", "previous_name": "Owner"},
                    )
                )
        for start in range(0, len(specs), 100):
            chunk = [
                kind(account_id=account_id, version=start + i + 1, time=now, actor=OPERATOR, **data)
                for i, (kind, data) in enumerate(specs[start : start + 100])
            ]
            store.append(account_id, start, chunk)
            total += len(chunk)
    return total


def rebuild_rows(container: Container, accounts: int = 100, per_account: int = 500) -> list[Row]:
    from keyledger.workers.rebuild import Rebuilder
    from tests.conftest import RunningProjector

    with RunningProjector(container):
        total = synthetic_history(container, accounts, per_account)
        assert total == accounts * per_account
        deadline = time.monotonic() + 300
        while container.redis.exists(
            *[container.keyspace.log(p) for p in range(container.keyspace.partitions)]
        ) and any(
            (container.redis.xrevrange(container.keyspace.log(p), count=1) or [[None]])[0][0]
            != container.redis.get(container.keyspace.checkpoint("auth", p))
            for p in range(container.keyspace.partitions)
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("projector did not catch up")
            time.sleep(0.2)
    summary = Rebuilder(container.redis, container.keyspace).run(["auth", "syslog"])
    rate = float(summary["eventsPerSecond"] or 0)
    return [
        Row(
            "rebuild replay (auth + log)",
            rate,
            "events/s",
            ">= 100,000",
            rate >= 100_000,
            f"{summary['replayed']} events, job {summary['seconds']} s",
        )
    ]


def drop_namespace(client: Any, namespace: str) -> None:
    """Unlink every key of ``namespace`` (what a benchmark wrote), a thousand at a time."""
    batch = []
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


def print_table(rows: list[Row]) -> None:
    print()
    print(f"| {'figure':38} | {'measured':>12} | {'unit':11} | {'target':22} | met | note")
    print(f"|{'-' * 40}|{'-' * 14}|{'-' * 13}|{'-' * 24}|-----|------")
    for r in rows:
        met = {True: "yes", False: "NO", None: " - "}[r.ok]
        value = f"{r.value:12,.2f}" if abs(r.value) < 100 else f"{r.value:12,.0f}"
        print(f"| {r.figure:38} | {value} | {r.unit:11} | {r.target:22} | {met} | {r.note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="interleaved rounds of wrk runs (every other reversed)",
    )
    parser.add_argument("--changes", type=int, default=500, help="changes for the lag figure")
    parser.add_argument("--accounts", type=int, default=100, help="accounts in the rebuild log")
    parser.add_argument("--events-per-account", type=int, default=500)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: install it with 'apt-get install wrk' (Debian) and run again")
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as url:
        namespace = f"bench{uuid.uuid4().hex[:6]}"
        settings = Settings(redis_url=url, namespace=namespace, apply_timeout=5.0)
        env = {
            **os.environ,
            "REDIS_URL": url,
            "KEYLEDGER_NAMESPACE": namespace,
            "KEYLEDGER_RATE_LIMIT_PER_MINUTE": "0",
            "KEYLEDGER_LOG_LEVEL": "WARNING",
            "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
            "PATH": f"{BIN}:{os.environ['PATH']}",
        }
        rows: list[Row] = []
        with started([projector(env)], Path(tmp)):
            container = build(settings)
            account_id, account_key, secret = bootstrap(container)
            rows += lag_rows(container, account_id, args.changes)
            first = first_request_rows(container)
            keys = {"x-api-key": account_key, "x-api-secret-key": secret}
            rows += http_rows(env, keys, args.seconds, Path(tmp), args.rounds)
        # On a quiet machine: the decision's own cost, not the scheduler's.
        rows[:0] = decision_rows(container, account_key, secret) + first
        rows += rebuild_rows(container, args.accounts, args.events_per_account)
        drop_namespace(container.redis, namespace)
    print_table(rows)


if __name__ == "__main__":
    main()
