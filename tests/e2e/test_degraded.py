"""Degraded operation: no projector running, and no Redis at all."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from tests.e2e.client import ApiClient, error_of
from tests.e2e.harness import (
    Stack,
    Tenant,
    WebServer,
    burst,
    forge,
    statuses,
    unique_key_name,
    wait_for,
    with_bad_checksum,
)

pytestmark = pytest.mark.e2e

APPLY_TIMEOUT_MS = "300"
NOTICE = "recorded but not yet in effect"
#: Nothing listens on port 1 of the loopback interface.
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
EFFECT_TIMEOUT = 15.0


# -- no projector ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quiet_stack(
    redis_url: str, e2e_redis: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A web server that waits only 300 ms for changes to take effect, and an account."""
    stack = Stack(redis_url, tmp_path_factory.mktemp("no_projector"))
    try:
        stack.start_projector()  # only to bootstrap: the account key must be in effect
        stack.web = stack.start_web(KEYLEDGER_APPLY_TIMEOUT_MS=APPLY_TIMEOUT_MS)
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="module")
def quiet_tenant(quiet_stack: Stack) -> Tenant:
    return quiet_stack.bootstrap("Stalled Co")


@pytest.fixture
def no_projector(quiet_stack: Stack, quiet_tenant: Tenant) -> Stack:
    """The stack with every projector stopped."""
    for process in quiet_stack.processes:
        if process.name.startswith("projector"):
            process.stop()
    return quiet_stack


def test_a_cli_change_without_projector_is_recorded_with_a_notice(
    no_projector: Stack, quiet_tenant: Tenant
) -> None:
    name = unique_key_name("cli-stalled")
    completed = no_projector.cli_run(
        "key",
        "create",
        "--account",
        quiet_tenant.account_id,
        "--user",
        quiet_tenant.owner_user_id,
        "--name",
        name,
        "--json",
        KEYLEDGER_APPLY_TIMEOUT_MS=APPLY_TIMEOUT_MS,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    payload = json.loads(completed.stdout)
    no_projector_secret = payload["secretKey"]
    assert no_projector_secret.startswith("klsk_")
    assert payload["inEffect"] is False
    assert NOTICE in payload["notice"]
    assert NOTICE in completed.stderr
    recorded = [e for e in quiet_tenant.owner.all_events() if e["type"] == "SecretKeyCreated"]
    assert name in {e["data"]["name"] for e in recorded}


def test_an_api_change_without_projector_is_202_with_a_notice_then_takes_effect(
    no_projector: Stack, quiet_tenant: Tenant
) -> None:
    owner = quiet_tenant.owner
    name = unique_key_name("stalled")

    response = owner.post(
        "/v1/api-keys", json={"name": name, "userId": quiet_tenant.owner_user_id}, expect=202
    )

    assert response.elapsed.total_seconds() < 5
    body = response.json()
    assert NOTICE in body["notice"]
    assert body["name"] == name and body["secretKey"].startswith("klsk_")
    created = quiet_tenant.client(body["secretKey"])
    assert created.get("/v1/").status_code == 401  # recorded, not in effect
    assert name in {k["name"] for k in owner.api_keys()}  # the change is in the record

    no_projector.start_projector("projector-again")

    def in_effect() -> bool:
        return created.get("/v1/").status_code == 200

    wait_for(in_effect, timeout=EFFECT_TIMEOUT, interval=0.1, what="the stalled change")
    assert statuses(burst(created)) == [200] * 8
    # With the projector back, changes are in effect when they return, without a notice.
    deleted = owner.delete_key(name, expect=204)
    assert deleted.content == b""
    assert created.get("/v1/").status_code == 401
    assert_log_matches_history(owner)


def assert_log_matches_history(owner: ApiClient) -> None:
    """Each event is in the system log exactly once (a replay changed nothing)."""
    entries = owner.logs(limit=1000)["entries"]
    versions = [e["version"] for e in owner.all_events()]
    assert sorted(e["id"] for e in entries) == versions


def test_a_projector_killed_outright_is_replaced_without_loss_or_duplicates(
    no_projector: Stack, quiet_tenant: Tenant
) -> None:
    owner = quiet_tenant.owner
    projector = no_projector.start_projector("projector-to-kill")
    user = owner.add_user("Before The Crash", role="Viewer")
    assert "notice" not in user

    os.killpg(projector.popen.pid, signal.SIGKILL)
    projector.wait()
    pending = owner.add_user("During The Outage", role="Viewer", expect=202)
    no_projector.start_projector("projector-replacement")

    after = owner.add_user("After The Restart", role="Viewer")
    assert "notice" not in after
    owner.update_user(pending["id"], role="Logs Viewer")
    assert_log_matches_history(owner)


def test_a_delete_without_projector_is_202_with_a_notice(
    no_projector: Stack, quiet_tenant: Tenant
) -> None:
    user = quiet_tenant.owner.add_user("Short Lived", role="Viewer", expect=202)
    assert NOTICE in user["notice"]

    response = quiet_tenant.owner.delete_user(user["id"], expect=202)

    assert NOTICE in response.json()["notice"]
    assert user["id"] not in {u["id"] for u in quiet_tenant.owner.users()}


# -- no Redis -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cut_off(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, WebServer]]:
    """A web server whose Redis does not exist."""
    stack = Stack(UNREACHABLE_REDIS, Path(tmp_path_factory.mktemp("no_redis")))
    try:
        yield stack, stack.start_web("web-no-redis", KEYLEDGER_REDIS_TIMEOUT_MS="500")
    finally:
        stack.stop_all()


def well_formed_keys() -> tuple[str, str]:
    return forge("klak"), forge("klsk")


def test_without_redis_health_is_still_ok(cut_off: tuple[Stack, WebServer]) -> None:
    _, web = cut_off
    assert web.client().get("/healthz", expect=200).json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/", None),
        ("GET", "/v1/users", None),
        ("POST", "/v1/users", {"name": "N", "email": "n@example.com", "role": "Owner"}),
        ("DELETE", "/v1/api-keys/some-key-name", None),
        ("GET", "/v1/logs", None),
    ],
)
def test_without_redis_a_well_formed_request_is_503(
    cut_off: tuple[Stack, WebServer], method: str, path: str, body: dict[str, str] | None
) -> None:
    _, web = cut_off
    client = web.client(*well_formed_keys())
    client.allow_server_errors = frozenset({503})

    response = client.request(method, path, json=body)

    assert response.status_code == 503, response.text
    error = error_of(response)
    assert error["code"] == "service_unavailable"
    assert "Traceback" not in response.text


def test_without_redis_every_worker_fails_closed(cut_off: tuple[Stack, WebServer]) -> None:
    _, web = cut_off
    client = web.client(*well_formed_keys())
    client.allow_server_errors = frozenset({503})
    assert statuses(burst(client, n=8)) == [503] * 8


def test_without_redis_malformed_keys_are_still_refused_with_401(
    cut_off: tuple[Stack, WebServer],
) -> None:
    _, web = cut_off
    account_key, secret_key = well_formed_keys()
    for client in (
        web.client(),
        web.client(account_key, with_bad_checksum(secret_key)),
        web.client("nonsense", "nonsense"),
    ):
        response: requests.Response = client.get("/v1/", expect=401)
        assert error_of(response)["code"] == "unauthenticated"


def test_without_redis_the_cli_fails_cleanly(cut_off: tuple[Stack, WebServer]) -> None:
    stack, _ = cut_off
    completed = stack.cli_run(
        "account",
        "create",
        "--name",
        "Nowhere",
        "--owner-name",
        "No One",
        "--owner-email",
        "no.one@example.com",
        "--json",
        KEYLEDGER_REDIS_TIMEOUT_MS="500",
    )
    assert completed.returncode != 0
    assert json.loads(completed.stdout)["error"]["status"] == 503
    assert "Traceback" not in completed.stderr
