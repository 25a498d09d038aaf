"""The Procfile's web server, ``keyledger serve`` (Granian), as a process: graceful
shutdown, workers started again when they die, access lines, settings it refuses."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest
import requests

from tests.e2e.harness import (
    STOP_TIMEOUT,
    Stack,
    Tenant,
    WebServer,
    answered_by_every_worker,
    burst,
    wait_for,
)

pytestmark = pytest.mark.e2e


def test_sigterm_lets_a_request_in_flight_finish_then_exits(
    stack: Stack, tenant: Tenant, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A change waits for the projector (here stopped) up to its apply timeout: the
    server is told to stop while it waits, and still answers it before exiting."""
    web = stack.start_web("web-draining", KEYLEDGER_APPLY_TIMEOUT_MS="2000")
    owner = web.client(tenant.account_key, tenant.secret_key)
    assert owner.get("/v1/").status_code == 200
    projector = next(p for p in stack.processes if p.name == "projector")
    projector.stop()
    answers: list[requests.Response] = []
    slow = threading.Thread(
        target=lambda: answers.append(
            owner.post(
                "/v1/users",
                json={
                    "name": "Late Arrival",
                    "email": f"late-{uuid.uuid4().hex[:8]}@example.com",
                    "role": "Viewer",
                },
            )
        )
    )
    try:
        started = time.monotonic()
        slow.start()
        time.sleep(0.7)  # the request is waiting for the projector
        os.kill(web.popen.pid, signal.SIGTERM)  # the master only, as a supervisor would
        slow.join(timeout=STOP_TIMEOUT)
        assert answers and answers[0].status_code == 202, answers
        assert time.monotonic() - started >= 1.9  # it waited its apply timeout, not cut
        assert web.popen.wait(timeout=STOP_TIMEOUT) == 0
        # Its access line was queued as it was answered: the stopping worker wrote it.
        assert any('"POST /v1/users HTTP/1.1" 202' in line for line in web.access_lines())
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{web.url}/healthz", timeout=2)
    finally:
        stack.start_projector("projector-again")


def pid_of(access_line: str) -> int:
    return int(access_line.split(" pid=<", 1)[1].split(">", 1)[0])


def test_a_worker_that_dies_is_started_again(stack: Stack, tenant: Tenant) -> None:
    web = stack.start_web("web-respawn", workers=2)
    owner = web.client(tenant.account_key, tenant.secret_key)
    answered_by_every_worker(web, owner, 200, workers=2)
    before = {pid_of(line) for line in web.access_lines()}
    assert len(before) == 2
    os.kill(max(before), signal.SIGKILL)
    seen = len(web.access_lines())

    def a_new_worker_answers() -> bool:
        try:
            assert all(r.status_code == 200 for r in burst(owner, n=8))
        except requests.ConnectionError:
            return False  # a kept-alive connection to the dead worker: the client retries
        return bool({pid_of(line) for line in web.access_lines()[seen:]} - before)

    wait_for(
        a_new_worker_answers, timeout=30, interval=0.5, what="a worker in the dead one's place"
    )
    assert web.running


def test_access_lines_name_the_worker_and_request_and_never_a_key(
    web: WebServer, tenant: Tenant
) -> None:
    rid = f"line-{uuid.uuid4().hex}"
    misplaced = requests.get(
        f"{web.url}/v1/api-keys/{tenant.secret_key}?token={tenant.secret_key}",
        headers={"X-Request-Id": rid},
        timeout=10,
    )
    assert misplaced.status_code == 401

    def line() -> str | None:
        return next((x for x in web.access_lines() if f"rid={rid} " in x), None)

    found = wait_for(line, timeout=10, what="the access line")
    assert " pid=<" in found and '"GET /v1/api-keys/[redacted-key] HTTP/1.1" 401' in found
    assert tenant.secret_key not in web.log_text()
    assert "token=" not in found

    # The request id is the client's choice too: the line shows the one the response
    # carries, a new one when the client's is no sane token (a key put there, say).
    answered = requests.get(
        f"{web.url}/v1/", headers={"X-Request-Id": tenant.account_key}, timeout=10
    )
    rid = answered.headers["X-Request-Id"]
    assert rid != tenant.account_key
    wait_for(line, timeout=10, what="the access line with the response's request id")
    assert tenant.account_key not in web.log_text()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("WEB_CONCURRENCY", "zero", "WEB_CONCURRENCY"),
        ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY"),
        ("PORT", "99999", "PORT"),
        ("KEYLEDGER_LOG_FORMAT", "xml", "KEYLEDGER_LOG_FORMAT"),
    ],
)
def test_a_bad_setting_stops_the_server_at_once_with_its_name(
    stack: Stack, setting: str, value: str, message: str
) -> None:
    completed = stack.cli_run("serve", **{setting: value})
    assert completed.returncode != 0
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
