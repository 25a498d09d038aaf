"""A key's whole life over real processes: gunicorn, the projector, the RQ worker and the
scheduler of expiry sweeps, with short real intervals and generous polling.

Time-based behaviour is asserted as properties that cannot flake: an old secret works
before its grace ends and fails after; a key never fails before its expiry and fails
from then on; the system log records the expiry within 60 s of it.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from keyledger.adapters.keyspace import Keyspace
from keyledger.domain.mapper import format_time, parse_time
from tests.e2e.client import ApiClient
from tests.e2e.harness import (
    MINTED,
    Stack,
    Tenant,
    WebServer,
    burst,
    statuses,
    unique_key_name,
    wait_for,
)
from tests.e2e.test_revocation_many_workers import every_worker_answers
from tests.integration.lifecycle_helpers import GitHubSigner, report

pytestmark = pytest.mark.e2e

WORKERS = 4
SCANNING = "/v1/secret-scanning/github"


@pytest.fixture(scope="module")
def github(tmp_path_factory: pytest.TempPathFactory) -> tuple[GitHubSigner, Path]:
    signer = GitHubSigner()
    return signer, signer.write_keys_file(tmp_path_factory.mktemp("github") / "keys.json")


@pytest.fixture(scope="module")
def lifecycle(stack: Stack, github: tuple[GitHubSigner, Path]) -> WebServer:
    """Four gunicorn workers writing last uses every second, the scanning endpoint on,
    and the RQ worker with the scheduler sweeping every second."""
    stack.start_worker()
    stack.start_scheduler(KEYLEDGER_SWEEP_SECONDS="1")
    return stack.start_web(
        "web-lifecycle",
        workers=WORKERS,
        KEYLEDGER_LAST_USED_FLUSH_SECONDS="1",
        KEYLEDGER_SECRET_SCANNING_KEYS=str(github[1]),
    )


@pytest.fixture(scope="module")
def owner(tenant: Tenant, lifecycle: WebServer) -> ApiClient:
    return lifecycle.client(tenant.account_key, tenant.secret_key)


def new_key(owner: ApiClient, tenant: Tenant, **fields: Any) -> tuple[str, str]:
    name = unique_key_name(fields.pop("prefix", "life"))
    body = {"name": name, "userId": tenant.owner_user_id, **fields}
    secret = owner.post("/v1/api-keys", json=body, expect=201).json()["secretKey"]
    return name, secret


def status_with(web: WebServer, tenant: Tenant, secret: str, account_key: str | None = None) -> int:
    return web.client(account_key or tenant.account_key, secret).get("/v1/").status_code


def log_entries(owner: ApiClient, resource_id: str) -> list[dict[str, Any]]:
    return owner.logs(resourceId=resource_id, limit=100)["entries"]  # type: ignore[no-any-return]


# -- rotation --------------------------------------------------------------------------------
def test_rotation_with_a_short_grace_old_then_fails_new_throughout(
    tenant: Tenant, lifecycle: WebServer, owner: ApiClient
) -> None:
    name, old = new_key(owner, tenant)
    rotated = owner.post(f"/v1/api-keys/{name}/rotate", json={"gracePeriodSeconds": 6}, expect=200)
    new = MINTED.secret(rotated.json()["secretKey"])
    assert new and new != old
    ends = parse_time(rotated.json()["previousSecretExpiresTimestamp"])

    while datetime.now(UTC) < ends - timedelta(seconds=3):  # well inside the grace
        assert status_with(lifecycle, tenant, old) == 200
        assert status_with(lifecycle, tenant, new) == 200
        time.sleep(0.2)
    wait_for(lambda: status_with(lifecycle, tenant, old) == 401, timeout=30, interval=0.2)
    assert datetime.now(UTC) >= ends  # never refused before the grace ended
    assert statuses(burst(lifecycle.client(tenant.account_key, new), n=8)) == [200] * 8
    assert statuses(burst(lifecycle.client(tenant.account_key, old), n=8)) == [401] * 8

    rotation = log_entries(owner, name)[-2]
    assert rotation["description"].startswith(f'API key "{name}" rotated; previous secret valid')


def test_account_key_rotation_with_a_grace_through_the_cli(
    stack: Stack, lifecycle: WebServer
) -> None:
    other = stack.bootstrap("Rotating Corp", web=lifecycle)
    started = datetime.now(UTC)
    rotated = stack.cli("account-key", "rotate", "--account", other.account_id, "--grace", "8s")
    new_account_key = rotated["accountKey"]
    assert new_account_key.startswith("klak_") and new_account_key != other.account_key
    ends = parse_time(rotated["previousKeyExpiresTimestamp"])
    grace = timedelta(seconds=8)
    assert started + grace - timedelta(milliseconds=1) <= ends <= datetime.now(UTC) + grace

    old_client = lifecycle.client(other.account_key, other.secret_key)
    answer = old_client.get("/v1/", expect=200)
    assert parse_time(answer.headers["X-Api-Key-Expires"]) == ends
    assert status_with(lifecycle, other, other.secret_key, new_account_key) == 200
    wait_for(lambda: old_client.get("/v1/").status_code == 401, timeout=30, interval=0.2)
    assert datetime.now(UTC) >= ends
    assert status_with(lifecycle, other, other.secret_key, new_account_key) == 200

    new_client = lifecycle.client(new_account_key, other.secret_key)
    ended = wait_for(
        lambda: [
            e
            for e in new_client.logs(limit=10)["entries"]
            if e["description"].startswith("Previous account key expired at")
        ],
        timeout=60,
        interval=0.5,
        what="the end of the account key's grace in the system log",
    )
    assert ended[0]["originator"] == "keyledger"


def test_a_rotation_without_grace_is_refused_the_old_secret_at_once(
    tenant: Tenant, lifecycle: WebServer, owner: ApiClient
) -> None:
    name, old = new_key(owner, tenant)
    new = owner.post(f"/v1/api-keys/{name}/rotate", json={}, expect=200).json()["secretKey"]
    assert statuses(burst(lifecycle.client(tenant.account_key, old), n=8)) == [401] * 8
    assert statuses(burst(lifecycle.client(tenant.account_key, new), n=8)) == [200] * 8


# -- expiry ----------------------------------------------------------------------------------
def test_a_key_expires_at_its_instant_and_the_system_log_records_it(
    tenant: Tenant, lifecycle: WebServer, owner: ApiClient
) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
    name, secret = new_key(owner, tenant, expiresTimestamp=format_time(expires))
    client = lifecycle.client(tenant.account_key, secret)
    first = client.get("/v1/", expect=200)
    assert first.headers["X-Api-Key-Expires"] == format_time(expires)

    def refused() -> bool:
        sent = datetime.now(UTC)
        code = client.get("/v1/").status_code
        received = datetime.now(UTC)
        assert code in (200, 401)
        assert code == 401 or sent < expires, "allowed although asked after the instant"
        assert code == 200 or received >= expires, "refused before the instant"
        return code == 401

    wait_for(refused, timeout=30, interval=0.1, what="the key to expire")
    assert datetime.now(UTC) >= expires
    assert owner.api_key(name)["status"] == "expired"
    assert name in [k["name"] for k in owner.api_keys()]  # still listed until deleted

    recorded = wait_for(
        lambda: [e for e in log_entries(owner, name) if " expired at " in e["description"]],
        timeout=60,
        interval=0.5,
        what="the expiry in the system log",
    )
    entry = recorded[0]
    assert entry["description"] == f'API key "{name}" expired at {format_time(expires)[:-5]}Z'
    assert entry["originator"] == "keyledger" and "apiKeyName" not in entry
    assert parse_time(entry["time"]) - expires < timedelta(seconds=60)
    time.sleep(2.5)  # two more sweeps
    assert len([e for e in log_entries(owner, name) if " expired at " in e["description"]]) == 1


# -- disable, enable -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def many(stack: Stack, lifecycle: WebServer) -> WebServer:
    return lifecycle  # four workers


def test_disable_and_enable_take_effect_at_once_in_every_worker(
    tenant: Tenant, many: WebServer, owner: ApiClient
) -> None:
    name, secret = new_key(owner, tenant, description="four workers")
    victim = many.client(tenant.account_key, secret)
    every_worker_answers(many, victim, 200)
    shown = owner.put(f"/v1/api-keys/{name}", json={"enabled": False}, expect=200).json()
    assert shown["status"] == "disabled" and shown["description"] == "four workers"
    assert victim.get("/v1/").status_code == 401
    every_worker_answers(many, victim, 401)
    owner.put(f"/v1/api-keys/{name}", json={"enabled": True}, expect=200)
    assert victim.get("/v1/").status_code == 200
    every_worker_answers(many, victim, 200)
    described = [e["description"] for e in log_entries(owner, name)]
    assert described[:2] == [f'API key "{name}" enabled', f'API key "{name}" disabled']


# -- last use and stale keys -----------------------------------------------------------------
def test_last_use_appears_after_a_flush(
    tenant: Tenant, lifecycle: WebServer, owner: ApiClient
) -> None:
    name, secret = new_key(owner, tenant)
    assert owner.api_key(name)["lastUsedTimestamp"] is None
    before = datetime.now(UTC)
    burst(lifecycle.client(tenant.account_key, secret), n=8)
    after = datetime.now(UTC)
    shown = wait_for(
        lambda: (key := owner.api_key(name))["lastUsedTimestamp"] and key,
        timeout=20,
        interval=0.2,
        what="the last use to be written",
    )
    used = parse_time(shown["lastUsedTimestamp"])
    assert before - timedelta(seconds=1) <= used <= after + timedelta(seconds=1)
    assert shown["lastUsedSourceIp"] == "127.0.0.1"
    account_key = owner.whoami()["account"]["accountKey"]
    assert account_key["lastUsedTimestamp"] is not None


def test_a_worker_stopping_gracefully_writes_the_uses_it_noted(
    stack: Stack, tenant: Tenant, owner: ApiClient
) -> None:
    """Granian's workers are forked processes that end with ``os._exit`` (no ``atexit``):
    the uses noted since the last flush are still written when the server stops."""
    quiet = stack.start_web("web-never-flushes", KEYLEDGER_LAST_USED_FLUSH_SECONDS="3600")
    name, secret = new_key(owner, tenant)
    burst(quiet.client(tenant.account_key, secret), n=8)
    quiet.stop()
    shown = owner.api_key(name)
    assert shown["lastUsedTimestamp"] is not None and shown["lastUsedSourceIp"] == "127.0.0.1"


def test_keys_unused_for_days_are_listed_by_the_api_and_the_cli(
    stack: Stack, lifecycle: WebServer, e2e_redis: redis.Redis
) -> None:
    other = stack.bootstrap("Stale Corp", web=lifecycle)
    client = lifecycle.client(other.account_key, other.secret_key)
    stale_name, stale_secret = new_key(client, other, prefix="stale")
    fresh_name, fresh_secret = new_key(client, other, prefix="fresh")
    lifecycle.client(other.account_key, fresh_secret).get("/v1/", expect=200)
    # A use written 120 days ago by some process (the last-use hash is not a projection):
    long_ago = int((time.time() - 120 * 86400) * 1000)
    partition = int(stale_secret[5:7], 16)
    e2e_redis.hset(
        Keyspace(stack.namespace, 4).last_used(partition),
        stale_secret[5:21],
        f"{long_ago} 10.1.2.3",
    )
    wait_for(lambda: client.api_key(fresh_name)["lastUsedTimestamp"], timeout=20, interval=0.2)

    listed = client.get("/v1/api-keys?unusedForDays=90", expect=200).json()["apiKeys"]
    assert [k["name"] for k in listed] == [stale_name]
    assert listed[0]["lastUsedSourceIp"] == "10.1.2.3"
    printed = stack.cli("keys", "stale", "--account", other.account_id, "--days", "90")
    assert printed == {"apiKeys": listed}
    assert client.get("/v1/api-keys?unusedForDays=0").status_code == 400


# -- leaked keys -----------------------------------------------------------------------------
def scan(web: WebServer, signer: GitHubSigner, body: bytes, **headers: str) -> Any:
    return web.client().post(SCANNING, data=body, headers={**signer.headers(body), **headers})


def test_github_secret_scanning_revokes_leaked_keys(
    stack: Stack, lifecycle: WebServer, github: tuple[GitHubSigner, Path]
) -> None:
    signer = github[0]
    leaky = stack.bootstrap("Leaky Corp", web=lifecycle)
    owner = lifecycle.client(leaky.account_key, leaky.secret_key)
    name, secret = new_key(owner, leaky, prefix="leaked")
    victim = lifecycle.client(leaky.account_key, secret)
    every_worker_answers(lifecycle, victim, 200)
    events_before = owner.event_count()

    bad = scan(
        lifecycle, signer, report(secret), **{"Github-Public-Key-Signature": signer.sign(b"[]")}
    )
    unknown = scan(lifecycle, signer, report(secret), **{"Github-Public-Key-Identifier": "nope"})
    assert (bad.status_code, unknown.status_code) == (401, 401)
    assert owner.event_count() == events_before
    assert victim.get("/v1/").status_code == 200

    answer = scan(lifecycle, signer, report(secret, "ghp_" + "x" * 36, leaky.account_key))
    assert answer.status_code == 200
    assert [(a["token_type"], a["label"]) for a in answer.json()] == [
        ("keyledger_secret_key", "true_positive"),
        ("unknown", "false_positive"),
        ("keyledger_account_key", "true_positive"),
    ]
    assert secret not in answer.text and leaky.account_key not in answer.text
    assert victim.get("/v1/").status_code == 401
    every_worker_answers(lifecycle, victim, 401)
    assert owner.get("/v1/").status_code == 200  # the account key still works
    revoked = log_entries(owner, name)[0]
    assert revoked["originator"] == "secret scanning" and revoked["type"] == "delete"
    assert " revoked: reported leaked at " in revoked["description"]

    recorded = owner.event_count()
    again = scan(lifecycle, signer, report(secret, leaky.account_key))
    assert [a["label"] for a in again.json()] == ["true_positive", "true_positive"]
    assert owner.event_count() == recorded

    status = stack.cli_run("status", "--json")
    leaks = json.loads(status.stdout)["leakedAccountKeys"]
    assert leaky.account_id in [leak["accountId"] for leak in leaks]


# -- afterwards ------------------------------------------------------------------------------
def test_after_all_of_it_the_chains_verify_and_a_rebuild_changes_nothing(
    stack: Stack, lifecycle: WebServer, e2e_redis: redis.Redis
) -> None:
    assert stack.cli("audit", "verify")["ok"] is True
    before = projection_keys(e2e_redis, stack.namespace)
    used_before = last_uses(e2e_redis, stack.namespace)
    assert used_before
    rebuilt = stack.cli("projections", "rebuild", "--queue", stack.queue)
    assert rebuilt["status"] == "finished"
    assert projection_keys(e2e_redis, stack.namespace) == before
    used_after = last_uses(e2e_redis, stack.namespace)
    for key, uses in used_before.items():  # a rebuild neither deletes nor rewinds a use
        assert all(used_after[key][k] >= v for k, v in uses.items())


def last_uses(client: redis.Redis, namespace: str) -> dict[bytes, dict[bytes, bytes]]:
    return {
        raw: client.hgetall(raw)
        for raw in client.scan_iter(match=f"{namespace}:*:lastused", count=1000)
    }


def projection_keys(client: redis.Redis, namespace: str) -> dict[str, object]:
    """Every projection key of the namespace with its contents."""
    found: dict[str, object] = {}
    for raw in sorted(client.scan_iter(match=f"{namespace}:*", count=1000)):
        key = raw.decode()
        if key.endswith((":log", ":events", ":head", ":lastused")) or ":proj:" in key:
            continue
        if ":sweep:" in key:
            continue
        if ":idem:" in key or ":rl:" in key or key.endswith(":meta"):
            continue
        kind = client.type(raw).decode()
        if kind == "hash":
            found[key] = client.hgetall(raw)
        elif kind == "set":
            found[key] = sorted(client.smembers(raw))
        elif kind == "zset":
            found[key] = client.zrange(raw, 0, -1, withscores=True)
        elif kind == "stream":
            found[key] = client.xrange(raw)
    return found
