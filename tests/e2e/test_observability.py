"""Operable in production (issue 12): metrics, readiness, JSON logs and the audit feed,
over real processes: a three-worker ``keyledger serve`` counting in prometheus_client's
multiprocess mode, a projector with its own metrics port, JSON logs everywhere."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from keyledger.adapters.embedded import EmbeddedRedis
from keyledger.adapters.keyspace import Keyspace
from tests.e2e.harness import (
    KEYLEDGER,
    MINTED,
    ROOT,
    Process,
    Stack,
    Tenant,
    WebServer,
    burst,
    forge,
    free_port,
    key_id_of,
    secret_part,
    statuses,
    wait_for,
)

pytestmark = pytest.mark.e2e

WORKERS = 3
TIMEOUT = 15.0


@dataclass
class Observed:
    stack: Stack
    web: WebServer
    projector: Process
    projector_metrics: str
    tenant: Tenant


@pytest.fixture(scope="module")
def observed(
    redis_url: str, e2e_redis: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Observed]:
    workdir = tmp_path_factory.mktemp("observability")
    metrics_dir = workdir / "metrics"
    metrics_dir.mkdir()
    stack = Stack(redis_url, workdir)
    port = free_port()
    try:
        projector = stack.start_projector(
            wait=False, KEYLEDGER_PROJECTOR_METRICS_PORT=str(port), KEYLEDGER_LOG_FORMAT="json"
        )
        web = stack.start_web(
            workers=WORKERS,
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            KEYLEDGER_LOG_FORMAT="json",
        )
        stack.web = web
        stack.wait_consuming(projector)
        tenant = stack.bootstrap("Observed Corp")
        yield Observed(stack, web, projector, f"http://127.0.0.1:{port}/metrics", tenant)
    finally:
        stack.stop_all()


# -- helpers ------------------------------------------------------------------------------
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> tuple[str, Samples]:
    response = requests.get(url, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return response.text, found


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and labels.items() <= dict(sample_labels).items()
    )


def json_lines(process: Process) -> list[dict[str, Any]]:
    return [json.loads(line) for line in process.log_text().splitlines() if line.startswith("{")]


def request_lines(process: Process) -> dict[str, dict[str, Any]]:
    return {
        line["request_id"]: line
        for line in json_lines(process)
        if line["logger"] == "keyledger.request"
    }


def check(web: WebServer, keys: tuple[str, str], uri: str = "/orders") -> requests.Response:
    return requests.get(
        f"{web.url}/v1/auth/check",
        headers={
            "x-api-key": keys[0],
            "x-api-secret-key": keys[1],
            "X-Original-Method": "GET",
            "X-Original-URI": uri,
            "X-Request-Id": f"fwd-{uuid.uuid4().hex}",
        },
        timeout=TIMEOUT,
    )


# -- metrics ------------------------------------------------------------------------------
def test_decisions_and_requests_add_up_across_the_worker_processes(observed: Observed) -> None:
    web, tenant = observed.web, observed.tenant
    metrics_url = f"{web.url}/metrics"
    _, before = scrape(metrics_url)
    wrong_secret = web.client(tenant.account_key, forge("klsk", key_id_of(tenant.secret_key)))
    keys = (tenant.account_key, tenant.secret_key)

    assert statuses(burst(tenant.owner, n=12)) == [200] * 12
    assert statuses(burst(wrong_secret, n=6)) == [401] * 6
    assert statuses(burst(web.client(), n=4)) == [401] * 4
    assert statuses(burst(tenant.owner, n=2, path="/v1/no-such-route")) == [404] * 2
    assert [check(web, keys).status_code for _ in range(10)] == [200] * 10
    assert [check(web, (keys[0], forge("klsk"))).status_code for _ in range(3)] == [401] * 3

    def settled() -> Samples | None:
        _, after = scrape(metrics_url)
        decisions = total(after, "keyledger_auth_decisions_total") - total(
            before, "keyledger_auth_decisions_total"
        )
        return after if decisions == 37 else None

    after = wait_for(settled, timeout=TIMEOUT, interval=0.2, what="37 decisions counted")

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("keyledger_auth_decisions_total", result="allowed", policy="none") == 24
    assert delta("keyledger_auth_decisions_total", policy="secret_key_valid", status="401") == 9
    assert delta("keyledger_auth_decisions_total", policy="credentials_present") == 4
    requests_total = "keyledger_http_requests_total"
    assert delta(requests_total, route="/v1/", status="200") == 12
    assert delta(requests_total, route="/v1/", status="401") == 10
    assert delta(requests_total, route="unmatched", status="404") == 2
    assert delta(requests_total, route="/v1/auth/check", status="200") == 10  # the fast path
    assert delta(requests_total, route="/v1/auth/check", status="401") == 3
    assert delta("keyledger_http_request_duration_seconds_count", route="/v1/") == 22
    assert delta("keyledger_key_verifications_total", cache="hit") >= 24


def test_the_counts_came_from_several_worker_processes(observed: Observed) -> None:
    rids = [f"spread-{i}-{uuid.uuid4().hex}" for i in range(12)]
    client = observed.tenant.owner

    def get(rid: str) -> int:
        return client.get("/v1/", headers={"X-Request-Id": rid}).status_code

    with ThreadPool() as pool:
        assert list(pool.map(get, rids)) == [200] * 12

    lines = wait_for(
        lambda: (found := request_lines(observed.web)) and all(r in found for r in rids) and found,
        timeout=TIMEOUT,
        what="the request log lines",
    )
    assert len({lines[rid]["pid"] for rid in rids}) >= 2


def test_an_append_is_counted_by_event_type(observed: Observed) -> None:
    url = f"{observed.web.url}/metrics"
    _, before = scrape(url)
    observed.tenant.owner.add_user("Counted User", role="Viewer")

    def counted() -> bool:
        _, after = scrape(url)
        name, labels = "keyledger_events_appended_total", {"type": "UserAdded"}
        return total(after, name, **labels) - total(before, name, **labels) == 1

    wait_for(counted, timeout=TIMEOUT, interval=0.2, what="the UserAdded append counted")


def test_nothing_in_the_metrics_names_an_account_key_user_or_secret(observed: Observed) -> None:
    tenant = observed.tenant
    user = tenant.owner.add_user("Metrics Private Person", role="Viewer")
    text = scrape(f"{observed.web.url}/metrics")[0] + scrape(observed.projector_metrics)[0]

    private = [
        tenant.account_id,
        tenant.owner_user_id,
        user["id"],
        tenant.key_name,
        tenant.name,
        tenant.owner_name,
        tenant.owner_email,
        key_id_of(tenant.account_key),
        key_id_of(tenant.secret_key),
    ]
    private += [s for token in MINTED.secrets for s in (token, secret_part(token))]
    assert [value for value in private if value in text] == []


def test_the_projector_port_shows_lag_halts_and_what_it_applied(observed: Observed) -> None:
    _, samples = scrape(observed.projector_metrics)
    assert total(samples, "keyledger_projector_applied_total") >= 3  # the bootstrap at least
    assert total(samples, "keyledger_redis_up") == 1
    partitions = {
        dict(labels)["partition"]
        for (name, labels) in samples
        if name == "keyledger_projector_lag_entries"
    }
    assert partitions == {"0", "1", "2", "3"}
    assert total(samples, "keyledger_partition_halted") == 0
    assert any(name.startswith("process_") for name, _ in samples)


def test_metrics_and_readiness_need_no_keys_and_carry_a_request_id(observed: Observed) -> None:
    for path in ("/metrics", "/readyz"):
        response = requests.get(
            f"{observed.web.url}{path}", headers={"X-Request-Id": "probe-1"}, timeout=TIMEOUT
        )
        assert response.status_code == 200, (path, response.text)
        assert response.headers["X-Request-Id"] == "probe-1"


# -- readiness ----------------------------------------------------------------------------
def ready(web: WebServer) -> tuple[int, dict[str, Any]]:
    response = requests.get(f"{web.url}/readyz", timeout=TIMEOUT)
    return response.status_code, response.json()


def test_readiness_fails_while_a_partition_is_halted_and_recovers(
    observed: Observed, e2e_redis: redis.Redis
) -> None:
    web = observed.web
    assert ready(web)[0] == 200
    keys = Keyspace(observed.stack.namespace, 4)
    partition = (keys.partition_of(observed.tenant.account_id) + 1) % 4
    marker = keys.halted(partition)
    e2e_redis.hset(marker, mapping={"entry": "0-1", "error": "halted by a test"})
    try:
        _, body = wait_for(
            lambda: (answer := ready(web))[0] == 503 and answer,
            timeout=TIMEOUT,
            what="/readyz to fail",
        )
        assert body["failing"] == ["partitions"]
        assert body["checks"]["partitions"]["halted"] == [partition]
        assert str(partition) in body["checks"]["partitions"]["error"]
        _, samples = scrape(observed.projector_metrics)
        assert total(samples, "keyledger_partition_halted", partition=str(partition)) == 1
    finally:
        e2e_redis.delete(marker)
    wait_for(lambda: ready(web)[0] == 200, timeout=TIMEOUT, what="/readyz to recover")


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("stoppable-redis"), persistent=False)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


def test_readiness_follows_the_projector_lag_and_redis(
    own_redis: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stack = Stack(own_redis.url, tmp_path_factory.mktemp("readiness"))
    try:
        web = stack.start_web(
            "web-ready",
            workers=1,
            KEYLEDGER_READY_MAX_LAG_MS="300",
            KEYLEDGER_REDIS_TIMEOUT_MS="500",
        )
        wait_for(lambda: ready(web)[0] == 200, timeout=TIMEOUT, what="a fresh stack to be ready")

        # No projector: a change is recorded, not applied, and grows older.
        completed = stack.cli_run(
            "account", "create", "--name", "Lagging", "--owner-name", "L",
            "--owner-email", "l@example.com", "--json", KEYLEDGER_APPLY_TIMEOUT_MS="50",
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr
        _, body = wait_for(
            lambda: (answer := ready(web))[0] == 503 and answer,
            timeout=TIMEOUT,
            what="/readyz to report the lag",
        )
        assert body["failing"] == ["projector"]
        assert body["checks"]["projector"]["lagMs"] > 300
        stack.start_projector()
        wait_for(lambda: ready(web)[0] == 200, timeout=TIMEOUT, what="the projector to catch up")

        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            status, body = ready(web)
            assert status == 503
            assert "redis" in body["failing"]
            assert body["checks"]["projector"]["ok"] is False
            assert requests.get(f"{web.url}/healthz", timeout=TIMEOUT).status_code == 200
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        wait_for(lambda: ready(web)[0] == 200, timeout=TIMEOUT, what="/readyz after Redis")
    finally:
        stack.stop_all()


# -- logs ---------------------------------------------------------------------------------
def test_json_log_lines_parse_and_carry_the_request_id_sent(observed: Observed) -> None:
    tenant, web = observed.tenant, observed.web
    admitted, refused = f"json-ok-{uuid.uuid4().hex}", f"json-no-{uuid.uuid4().hex}"
    tenant.owner.get("/v1/users?limit=5", headers={"X-Request-Id": admitted}, expect=200)
    wrong = web.client(tenant.account_key, forge("klsk", key_id_of(tenant.secret_key)))
    wrong.get("/v1/", headers={"X-Request-Id": refused}, expect=401)

    lines = wait_for(
        lambda: (found := request_lines(web)) and refused in found and admitted in found and found,
        timeout=TIMEOUT,
        what="the request log lines",
    )
    ok = lines[admitted]
    assert ok["level"] == "INFO" and ok["logger"] == "keyledger.request"
    assert (ok["method"], ok["path"], ok["route"], ok["status"]) == (
        "GET",
        "/v1/users",
        "/v1/users",
        200,
    )
    assert (ok["account_id"], ok["key_name"]) == (tenant.account_id, tenant.key_name)
    assert ok["duration_ms"] > 0 and ok["time"].endswith("Z")
    no = lines[refused]
    assert (no["status"], no["policy"]) == (401, "secret_key_valid")
    assert no["reason"]
    assert "account_id" not in no


def test_every_line_the_web_server_and_projector_write_is_json(observed: Observed) -> None:
    """The server's master process too: ``keyledger serve`` formats its lines as well."""
    for process in (observed.web, observed.projector):
        text = process.log_text()
        assert text
        for line in text.splitlines():
            assert isinstance(json.loads(line), dict), line
    starting = [json.loads(line)["message"] for line in observed.web.log_text().splitlines()]
    assert any(message.startswith("Listening at") for message in starting), starting


def test_the_request_id_is_recorded_in_the_events_it_appends(observed: Observed) -> None:
    owner = observed.tenant.owner
    rid = f"audit-{uuid.uuid4().hex}"
    response = owner.post(
        "/v1/users",
        json={
            "name": "Traced User",
            "email": f"t-{uuid.uuid4().hex[:6]}@example.com",
            "role": "Viewer",
        },
        headers={"X-Request-Id": rid},
        expect=201,
    )
    assert response.headers["X-Request-Id"] == rid
    assert owner.all_events()[-1]["actor"]["requestId"] == rid


def test_an_unreasonable_request_id_is_replaced(observed: Observed) -> None:
    response = observed.tenant.owner.get("/v1/", headers={"X-Request-Id": "x" * 65}, expect=200)
    assert response.headers["X-Request-Id"] != "x" * 65
    assert len(response.headers["X-Request-Id"]) == 32


# -- the audit feed -----------------------------------------------------------------------
def tail(stack: Stack, *args: str) -> list[dict[str, Any]]:
    completed = stack.cli_run("events", "tail", *args)
    assert completed.returncode == 0, completed.stderr
    return [json.loads(line) for line in completed.stdout.splitlines()]


def test_the_feed_follows_new_events_and_resumes_without_repeats(observed: Observed) -> None:
    stack, owner = observed.stack, observed.tenant.owner
    so_far = tail(stack)
    assert so_far, "the bootstrap's events"
    start = so_far[-1]["cursor"]

    follower = subprocess.Popen(
        [KEYLEDGER, "events", "tail", "--follow", "--from", start],
        cwd=ROOT,
        env=stack.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[dict[str, Any]] = queue.Queue()
    reader = threading.Thread(
        target=lambda: [lines.put(json.loads(line)) for line in follower.stdout or []], daemon=True
    )
    reader.start()
    try:
        name = f"Followed {uuid.uuid4().hex[:6]}"
        owner.add_user(name, role="Viewer")
        followed = []
        while True:
            item = lines.get(timeout=TIMEOUT)
            followed.append(item)
            if item["type"] == "UserAdded" and item["data"]["name"] == name:
                break
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.wait(timeout=TIMEOUT)
    assert follower.returncode == 0

    owner.add_user(f"After {uuid.uuid4().hex[:6]}", role="Viewer")
    resumed = tail(stack, "--from", followed[-1]["cursor"])
    whole = tail(stack, "--from", "start")

    def ids(items: list[dict[str, Any]]) -> list[tuple[int, str]]:
        return [(i["partition"], i["entryId"]) for i in items]

    assert ids(so_far + followed + resumed) == ids(whole)
    assert len(set(ids(whole))) == len(whole)
    assert resumed and resumed[-1]["type"] == "UserAdded"


def test_the_feed_of_one_account_and_as_csv(observed: Observed) -> None:
    stack, tenant = observed.stack, observed.tenant
    other = stack.bootstrap("Feed Other")
    mine = tail(stack, "--account", tenant.account_id)
    assert mine and {i["accountId"] for i in mine} == {tenant.account_id}
    completed = stack.cli_run("events", "tail", "--account", other.account_id, "--format", "csv")
    rows = completed.stdout.splitlines()
    assert rows[0].startswith("cursor,partition,entryId,accountId,version,type")
    assert len(rows) - 1 == len(tail(stack, "--account", other.account_id))


def test_the_feed_refuses_a_cursor_it_did_not_print(observed: Observed) -> None:
    completed = observed.stack.cli_run("events", "tail", "--from", "c1:zz:")
    assert completed.returncode == 2
    assert "--from" in completed.stderr and "Traceback" not in completed.stderr


# -- the worker ---------------------------------------------------------------------------
def test_the_worker_runs_rebuilds_and_serves_its_metrics(observed: Observed) -> None:
    port = free_port()
    worker = observed.stack.start_process(
        "worker", "worker", KEYLEDGER_WORKER_METRICS_PORT=str(port), KEYLEDGER_LOG_FORMAT="json"
    )
    url = f"http://127.0.0.1:{port}/metrics"

    def serving() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(serving, timeout=TIMEOUT, what="the worker's metrics port")
    result = observed.stack.cli("projections", "rebuild", "auth")
    assert result["status"] == "finished", result

    _, samples = scrape(url)
    assert total(samples, "keyledger_rebuild_in_progress", projection="auth") == 0
    assert ("keyledger_rebuild_progress_ratio", (("projection", "auth"),)) in samples
    worker.stop()
    assert all(isinstance(json.loads(line), dict) for line in worker.log_text().splitlines())


class ThreadPool:
    """Four threads, so that several web workers serve at once."""

    def __enter__(self) -> Any:
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(max_workers=4)
        return self.pool

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown()


def test_keyledger_run_gives_its_processes_an_emptied_metrics_directory(
    observed: Observed, tmp_path: Path
) -> None:
    """What `make run` does: a directory of its own under var/metrics, empty, exported,
    and removed at the end, with what runs that are gone left there."""
    stale = tmp_path / "var" / "metrics" / "counter_999999.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over from an earlier run")
    gone = tmp_path / "var" / "metrics" / "run-999999"  # no such process
    gone.mkdir()
    (gone / "counter_1.db").write_bytes(b"left by a run that was killed")
    (tmp_path / "Procfile").write_text(
        "probe: echo dir=$PROMETHEUS_MULTIPROC_DIR files=$(ls -A $PROMETHEUS_MULTIPROC_DIR | wc -l)\n"
    )
    completed = subprocess.run(
        [KEYLEDGER, "run"],
        cwd=tmp_path,
        env=observed.stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert re.search(
        rf"dir={re.escape(str(tmp_path / 'var' / 'metrics'))}/run-\d+ files=0", completed.stdout
    ), completed.stdout
    assert not (tmp_path / "var" / "metrics").exists()
