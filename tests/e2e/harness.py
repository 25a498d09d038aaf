"""Real processes for the end-to-end tests: the Procfile's web server, the projector and the CLI.

A ``Stack`` owns one key namespace in the test Redis and the processes that
serve it. Every process writes its stdout and stderr to a file under the
stack's directory, and every file, namespace and secret is recorded in the
session-wide registries below so that the last test module can scan all of
them for leaked secrets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis
import requests

from keyledger.domain.tokens import KeyKind, checksum, generate
from tests.e2e.client import ApiClient

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KEYLEDGER = str(BIN / "keyledger")

#: Start-up and shut-down bounds; processes normally need well under a tenth of these.
BOOT_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
#: ``keyledger serve`` under another start method of the worker processes than the
#: platform's default (fork on Linux; Python 3.14 moves to forkserver, which Granian
#: replaces with spawn).
SERVE_STARTED_BY = (
    "import multiprocessing, sys; multiprocessing.set_start_method(sys.argv[1]); "
    "from keyledger.cli import main; main(['serve'])"
)


def procfile_web() -> str:
    """The command of the Procfile's ``web`` process: what ``make run`` serves with."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == "web":
            return command.strip()
    raise AssertionError("the Procfile has no web process")


T = TypeVar("T")


# -- session-wide registries ----------------------------------------------------------------
@dataclass
class Registry:
    """What this test session minted and wrote: scanned by ``test_zz_no_secret_anywhere``."""

    secrets: set[str] = field(default_factory=set)
    namespaces: list[str] = field(default_factory=list)
    log_files: list[Path] = field(default_factory=list)
    access_logs: list[Path] = field(default_factory=list)
    #: (request line, status, body) of every response the API clients received.
    responses: list[tuple[str, int, str]] = field(default_factory=list)

    def secret(self, token: str | None) -> str | None:
        if token:
            self.secrets.add(token)
        return token

    def response(self, response: requests.Response) -> None:
        request = response.request
        self.responses.append(
            (f"{request.method} {request.url}", response.status_code, response.text)
        )


MINTED = Registry()

#: A key is ``klak_``/``klsk_`` + 16-hex key id + 43-char secret + 6-char checksum.
SECRET_PART = slice(5 + 16, 5 + 16 + 43)


def secret_part(token: str) -> str:
    return token[SECRET_PART]


#: Requests that hit a bug already reported by an xfail test carry this request-id prefix.
KNOWN_BUG_PREFIX = "known-bug-"


def known_bug_request_id() -> str:
    return f"{KNOWN_BUG_PREFIX}{uuid.uuid4().hex}"


def unique_namespace() -> str:
    return f"e2e{uuid.uuid4().hex[:10]}"


def unique_key_name(prefix: str = "key") -> str:
    """A valid key name (10-50 of letters, digits, '-', '_'), unique in practice."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.02, what: str = ""
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}")
        time.sleep(interval)


def delete_namespace(client: redis.Redis, namespace: str) -> None:
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


def burst(
    client: ApiClient, n: int = 8, method: str = "GET", path: str = "/v1/", concurrency: int = 4
) -> list[requests.Response]:
    """``n`` requests, ``concurrency`` at a time, so that both web workers serve some."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(lambda _: client.request(method, path), range(n)))


def statuses(responses: list[requests.Response]) -> list[int]:
    return [r.status_code for r in responses]


def answered_by_every_worker(
    web: WebServer,
    client: ApiClient,
    expect: int,
    workers: int,
    rounds: int = 40,
    concurrency: int = 8,
) -> None:
    """Bursts of ``GET /v1/`` until each of the ``workers`` processes answered ``expect``
    (every burst must answer it), so that each has verified or refused the key itself.
    Each worker runs requests in threads: up to ``concurrency`` first verifications of
    the key may run at once in one process (each takes a token of the failure ceiling
    until it succeeds)."""
    pids: set[str] = set()
    for _ in range(rounds):
        responses = burst(client, n=12, concurrency=concurrency)
        assert statuses(responses) == [expect] * len(responses)
        pids.update(web.worker_of([r.headers["X-Request-Id"] for r in responses]).values())
        if len(pids) == workers:
            return
    raise AssertionError(f"only workers {sorted(pids)} answered in {rounds} bursts")


def in_one_minute(check: Callable[[], T], margin: float = 15) -> T:
    """Run ``check`` (a few seconds at most) inside one one-minute window of this machine's
    clock, which counts of failures and requests use: with less than ``margin`` seconds of
    the current minute left, wait for the next one first."""
    into_window = time.time() % 60
    if into_window > 60 - margin:
        time.sleep(60 - into_window + 0.05)  # wait for a fresh window, not for a result
    window = int(time.time() // 60)
    result = check()
    assert int(time.time() // 60) == window, "the check took longer than its margin"
    return result


def forge(kind: str, key_id: str | None = None, partition: int = 0) -> str:
    """A well-formed key (valid layout and checksum) that keyledger never issued.

    With ``key_id`` it names an existing key but carries another secret.
    """
    parsed = generate(KeyKind(kind), partition)
    if key_id is None:
        return parsed.token
    body = f"{kind}_{key_id}{parsed.token[SECRET_PART]}"
    return body + checksum(body)


def key_id_of(token: str) -> str:
    return token[5:21]


def with_bad_checksum(token: str) -> str:
    last = "A" if token[-1] != "A" else "B"
    return token[:-1] + last


# -- processes ------------------------------------------------------------------------------
@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def terminate(self) -> None:
        """SIGTERM the process group this test started (the server's master + its workers)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)

    def wait(self) -> None:
        try:
            self.popen.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        self.terminate()
        self.wait()


@dataclass
class WebServer(Process):
    url: str = ""

    def client(self, account_key: str | None = None, secret_key: str | None = None) -> ApiClient:
        return ApiClient(self.url, account_key, secret_key, secrets=MINTED)

    def access_lines(self) -> list[str]:
        return [line for line in self.log_text().splitlines() if " pid=<" in line]

    def worker_of(self, request_ids: list[str], timeout: float = 5.0) -> dict[str, str]:
        """Which web worker (pid) served each request, from the access log (``pid=<N>``)."""

        def probe() -> dict[str, str] | None:
            found: dict[str, str] = {}
            for line in self.access_lines():
                pid = line.split(" pid=<", 1)[1].split(">", 1)[0]
                rid = line.split(" rid=", 1)[1].split(" ", 1)[0]
                found[rid] = pid
            if all(rid in found for rid in request_ids):
                return {rid: found[rid] for rid in request_ids}
            return None

        return wait_for(probe, timeout=timeout, what="the access log lines of the requests")


@dataclass
class Tenant:
    """A bootstrapped account: API enabled, one Owner with one key, and a client for it."""

    account_id: str
    owner_user_id: str
    account_key: str
    key_name: str
    secret_key: str
    owner: ApiClient
    name: str
    owner_name: str
    owner_email: str

    def client(self, secret_key: str, account_key: str | None = None) -> ApiClient:
        return self.owner.with_keys(account_key or self.account_key, secret_key)


class Stack:
    """One namespace in the test Redis, with the processes serving it."""

    def __init__(
        self,
        redis_url: str,
        workdir: Path,
        namespace: str | None = None,
        env: dict[str, str] | None = None,
    ):
        self.redis_url = redis_url
        #: Settings every process of this stack gets (e.g. a Redis Cluster's).
        self.extra_env = dict(env or {})
        self.namespace = namespace or unique_namespace()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.processes: list[Process] = []
        self.web: WebServer | None = None
        self._serial = 0
        MINTED.namespaces.append(self.namespace)

    # -- environment ---------------------------------------------------------------------
    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("KEYLEDGER_")
            and key not in {"PORT", "WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR"}
        }
        env.update(
            {
                "REDIS_URL": self.redis_url,
                "KEYLEDGER_NAMESPACE": self.namespace,
                "KEYLEDGER_PARTITIONS": "4",
                # Every request of these tests comes from 127.0.0.1, many times a second
                # and often with wrong keys on purpose: the rate limit and the failure
                # throttle (with the ceiling on failed verifications) are off, except in
                # test_rate_limits, which sets its own.
                "KEYLEDGER_RATE_LIMIT_PER_MINUTE": "0",
                "KEYLEDGER_AUTH_FAILURES_PER_MINUTE": "0",
                "KEYLEDGER_FAILED_VERIFICATIONS_PER_SECOND": "0",
                "PYTHONUNBUFFERED": "1",
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def _log_path(self, name: str) -> Path:
        self._serial += 1
        path = self.workdir / f"{self._serial:02d}-{name}.log"
        MINTED.log_files.append(path)
        return path

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> tuple[Any, Path]:
        log_path = self._log_path(name)
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as one
            )
        return popen, log_path

    # -- processes -----------------------------------------------------------------------
    def start_web(
        self, name: str = "web", workers: int = 2, start_method: str | None = None, **env: str
    ) -> WebServer:
        """The Procfile's web server (``keyledger serve``, two workers) on a free port;
        returns once ``/healthz`` answers. ``start_method`` (``spawn``, ``forkserver``)
        starts its worker processes another way than the platform's default."""
        for _attempt in range(3):
            port = free_port()
            if start_method is None:
                argv = ["sh", "-c", f"exec {procfile_web()}"]
            else:
                argv = [sys.executable, "-c", SERVE_STARTED_BY, start_method]
            settings = {"HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers)}
            popen, log_path = self._spawn(name, argv, self.env(**settings, **env))
            server = WebServer(name, popen, log_path, url=f"http://127.0.0.1:{port}")
            self.processes.append(server)
            MINTED.access_logs.append(log_path)
            if self._wait_healthy(server):
                return server
            server.stop()  # most likely lost the port to another process: try another
        raise AssertionError(f"the web server did not start; log:\n{server.log_text()}")

    def _wait_healthy(self, server: WebServer) -> bool:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if not server.running:
                return False
            try:
                if requests.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{server.name} not healthy in {BOOT_TIMEOUT} s:\n{server.log_text()}")

    def start_projector(self, name: str = "projector", *, wait: bool = True, **env: str) -> Process:
        """``keyledger projector``; returns once it consumes every partition (with ``wait``)."""
        popen, log_path = self._spawn(name, [KEYLEDGER, "projector"], self.env(**env))
        process = Process(name, popen, log_path)
        self.processes.append(process)
        if wait:
            self.wait_consuming(process)
        return process

    def start_process(self, name: str, *args: str, **env: str) -> Process:
        """``keyledger ARGS`` as a long-running process of the stack (e.g. ``worker``)."""
        popen, log_path = self._spawn(name, [KEYLEDGER, *args], self.env(**env))
        process = Process(name, popen, log_path)
        self.processes.append(process)
        return process

    @staticmethod
    def wait_consuming(process: Process) -> None:
        def consuming() -> bool:
            if not process.running:
                raise AssertionError(f"projector exited at start:\n{process.log_text()}")
            return "consuming" in process.log_text()

        wait_for(consuming, timeout=BOOT_TIMEOUT, what="the projector to consume")

    @property
    def queue(self) -> str:
        """This stack's own RQ queue (the session's stacks share one Redis)."""
        return f"keyledger-{self.namespace}"

    def start_worker(self, name: str = "worker", **env: str) -> Process:
        """The Procfile's ``keyledger worker`` (RQ, JSON serializer) on this stack's queue."""
        argv = [KEYLEDGER, "worker", "--queue", self.queue]
        popen, log_path = self._spawn(name, argv, self.env(**env))
        process = Process(name, popen, log_path)
        self.processes.append(process)
        wait_for(
            lambda: "Listening on" in process.log_text() or not process.running,
            timeout=BOOT_TIMEOUT,
            what="the RQ worker to listen",
        )
        assert process.running, process.log_text()
        return process

    def start_scheduler(self, name: str = "scheduler", **env: str) -> Process:
        """``keyledger scheduler``: enqueues an expiry sweep every KEYLEDGER_SWEEP_SECONDS."""
        argv = [KEYLEDGER, "scheduler", "--queue", self.queue]
        popen, log_path = self._spawn(name, argv, self.env(**env))
        process = Process(name, popen, log_path)
        self.processes.append(process)
        wait_for(
            lambda: "scheduling an expiry sweep" in process.log_text() or not process.running,
            timeout=BOOT_TIMEOUT,
            what="the scheduler to start",
        )
        assert process.running, process.log_text()
        return process

    def start(self) -> WebServer:
        """The usual pair, started side by side: a projector and a web server."""
        projector = self.start_projector(wait=False)
        self.web = self.start_web()
        self.wait_consuming(projector)
        return self.web

    def stop_all(self) -> None:
        """Stop every process of the stack (all at once: the projector needs up to 2 s)."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait()

    # -- the operator command line ---------------------------------------------------------
    def cli_run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``keyledger ARGS``; stderr goes to a log file (it is scanned for secrets)."""
        log_path = self._log_path(f"cli-{args[0]}")
        with log_path.open("w") as stderr:
            completed = subprocess.run(
                [KEYLEDGER, *args],
                cwd=ROOT,
                env=self.env(**env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                timeout=60,
            )
        completed.stderr = log_path.read_text()
        for line in completed.stdout.splitlines():
            with contextlib.suppress(ValueError):
                payload = json.loads(line)
                if isinstance(payload, dict):
                    MINTED.secret(payload.get("accountKey"))
                    MINTED.secret(payload.get("secretKey"))
        return completed

    def cli(self, *args: str, **env: str) -> dict[str, Any]:
        """Run ``keyledger ARGS --json``, expect success and return its one JSON object."""
        completed = self.cli_run(*args, "--json", **env)
        assert completed.returncode == 0, (
            f"keyledger {' '.join(args)} failed ({completed.returncode}):\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
        lines = completed.stdout.strip().splitlines()
        assert len(lines) == 1, f"expected one JSON line, got {completed.stdout!r}"
        payload: dict[str, Any] = json.loads(lines[0])
        return payload

    def bootstrap(self, name: str | None = None, web: WebServer | None = None) -> Tenant:
        """The README's walk-through: account, API enabled, the Owner's first key."""
        web = web or self.web
        assert web is not None, "start a web server first"
        name = name or f"Acme {uuid.uuid4().hex[:6]}"
        owner_name = f"{name} Owner"
        owner_email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
        created = self.cli(
            "account",
            "create",
            "--name",
            name,
            "--owner-name",
            owner_name,
            "--owner-email",
            owner_email,
        )
        account_id, owner_user_id = created["accountId"], created["ownerUserId"]
        assert "notice" not in created, created
        enabled = self.cli("api", "enable", "--account", account_id)
        account_key = enabled["accountKey"]
        assert account_key and account_key.startswith("klak_"), enabled
        key_name = unique_key_name("owner")
        made = self.cli(
            "key", "create", "--account", account_id, "--user", owner_user_id, "--name", key_name
        )
        assert made["name"] == key_name
        secret_key = made["secretKey"]
        assert secret_key and secret_key.startswith("klsk_"), made
        return Tenant(
            account_id=account_id,
            owner_user_id=owner_user_id,
            account_key=account_key,
            key_name=key_name,
            secret_key=secret_key,
            owner=web.client(account_key, secret_key),
            name=name,
            owner_name=owner_name,
            owner_email=owner_email,
        )
