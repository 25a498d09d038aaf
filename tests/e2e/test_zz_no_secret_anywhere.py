"""Last of all: after the whole journey, no secret is anywhere but in its creating response.

Every account key and secret key minted during the session (by the CLI or the
API) is in ``MINTED``. This module plays one more journey of its own, which
also presents real secrets in the wrong places, then stops every process and
scans every Redis key of every e2e namespace (values of every type), every
process log and every HTTP response for any secret or its 43-character
secret part.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import redis
import requests

from keyledger.domain.mapper import format_time
from tests.e2e.harness import (
    KNOWN_BUG_PREFIX,
    MINTED,
    Stack,
    Tenant,
    WebServer,
    forge,
    secret_part,
    unique_key_name,
    unique_namespace,
    with_bad_checksum,
)

pytestmark = pytest.mark.e2e


def _in_a_month() -> str:
    return format_time(datetime.now(UTC) + timedelta(days=30))


ACCESS_LINE = re.compile(r' pid=<\d+> \S+ rid=(\S*) "[^"]*" (\d{3}) [\d.]+ms$')


def play_journey(stack: Stack, tenant: Tenant, web: WebServer) -> list[str]:
    """Everything that creates, uses, changes or misuses a secret; returns this journey's.

    The misuses go to a second web server writing JSON logs too
    (KEYLEDGER_LOG_FORMAT=json), so the scan covers that format.
    """
    owner = tenant.owner
    json_web = stack.start_web("web-json", KEYLEDGER_LOG_FORMAT="json")
    other = stack.bootstrap("Leaky Corp")
    viewer = owner.add_user("Scan Viewer", role="Viewer")
    minted = [tenant.account_key, tenant.secret_key, other.account_key, other.secret_key]
    restricted = unique_key_name("scan")
    minted.append(
        owner.create_key(restricted, viewer["id"], allowed_source_ips=["10.0.0.0/8"])["secretKey"]
    )
    kept = unique_key_name("scan")
    minted.append(owner.create_key(kept, viewer["id"])["secretKey"])
    doomed = unique_key_name("scan")
    minted.append(owner.create_key(doomed, tenant.owner_user_id)["secretKey"])

    attempts = [
        (tenant.account_key, minted[-3]),  # source subnet refused: 403
        (tenant.account_key, minted[-2]),  # a viewer writing: 403
        (tenant.account_key, tenant.account_key),  # account key as the secret
        (tenant.secret_key, tenant.account_key),  # swapped
        (tenant.account_key, with_bad_checksum(tenant.secret_key)),  # the real secret part
        (with_bad_checksum(tenant.account_key), tenant.secret_key),
        (other.account_key, tenant.secret_key),  # cross-account
        (tenant.account_key, tenant.secret_key[:-1]),
    ]
    for account_key, secret_key in attempts:
        for server in (web, json_web):
            client = server.client(account_key, secret_key)
            assert client.get("/v1/").status_code in {200, 401, 403}
            assert client.post("/v1/users", json={"name": "x"}).status_code in {400, 401, 403}
            check = client.get(
                "/v1/auth/check", headers={"X-Original-Method": "GET", "X-Original-URI": "/x"}
            )
            assert check.status_code in {200, 401, 403}
    # A client that puts a key in the path: the path is logged, the key is not. (Sent
    # without the response recorder: a 404 names the key name the client asked for.)
    for keys in ((tenant.account_key, tenant.secret_key), (None, None)):
        misplaced = requests.get(
            f"{json_web.url}/v1/api-keys/{tenant.secret_key}",
            headers=json_web.client(*keys).headers(),
            timeout=30,
        )
        assert misplaced.status_code in {401, 404}

    owner.allow_subnet(kept, "127.0.0.0/8")
    owner.delete_key(doomed)
    assert web.client(tenant.account_key, minted[-1]).get("/v1/").status_code == 401
    owner.update_user(viewer["id"], role="Logs Viewer")
    owner.delete_user(viewer["id"])
    minted.append(stack.cli("account-key", "rotate", "--account", other.account_id)["accountKey"])
    cli_key = stack.cli(
        "key",
        "create",
        "--account",
        tenant.account_id,
        "--user",
        tenant.owner_user_id,
        "--name",
        unique_key_name("scan-cli"),
        "--expires",
        _in_a_month(),
        "--description",
        "made by the CLI",
    )
    minted.append(cli_key["secretKey"])
    # the key's life: rotations (the new secret is in the 200 answer only), disable, leaks
    life = unique_key_name("scan-life")
    minted.append(owner.create_key(life, tenant.owner_user_id)["secretKey"])
    owner.put(f"/v1/api-keys/{life}", json={"enabled": False, "description": "off"}, expect=200)
    owner.put(f"/v1/api-keys/{life}", json={"enabled": True}, expect=200)
    rotated = owner.post(f"/v1/api-keys/{life}/rotate", json={"gracePeriodSeconds": 60}, expect=200)
    assert web.client(tenant.account_key, minted[-1]).get("/v1/").status_code == 200  # grace
    minted.append(rotated.json()["secretKey"])
    assert web.client(tenant.account_key, minted[-1]).get("/v1/").status_code == 200
    minted.append(
        stack.cli("account-key", "rotate", "--account", other.account_id, "--grace", "1h")[
            "accountKey"
        ]
    )
    stack.cli("keys", "stale", "--account", tenant.account_id, "--days", "1")
    owner.logs()
    owner.all_events()
    return minted


@pytest.fixture(scope="module")
def journey_done(stack: Stack, tenant: Tenant, web: WebServer) -> list[str]:
    """Play the journey, then stop every process so that every log is complete."""
    minted = play_journey(stack, tenant, web)
    stack.stop_all()
    return minted


def needles() -> list[tuple[str, bytes]]:
    """(label, bytes to look for): each secret whole and its secret part."""
    found: list[tuple[str, bytes]] = []
    for token in sorted(MINTED.secrets):
        label = f"{token[:5]}...{token[16:21]}"
        found.append((label, token.encode()))
        found.append((f"secret part of {label}", secret_part(token).encode()))
    return found


def redis_dump(client: redis.Redis, namespace: str) -> dict[str, bytes]:
    """Every key of the namespace with all its contents, whatever the type."""
    dump: dict[str, bytes] = {}
    for raw_key in client.scan_iter(match=f"{namespace}:*", count=1000):
        key = raw_key.decode()
        kind = client.type(raw_key).decode()
        parts: list[bytes] = [raw_key]
        if kind == "string":
            parts.append(client.get(raw_key) or b"")
        elif kind == "hash":
            for field, value in client.hgetall(raw_key).items():
                parts += [field, value]
        elif kind == "set":
            parts += list(client.smembers(raw_key))
        elif kind == "zset":
            parts += [member for member, _ in client.zrange(raw_key, 0, -1, withscores=True)]
        elif kind == "list":
            parts += list(client.lrange(raw_key, 0, -1))
        elif kind == "stream":
            for entry_id, fields in client.xrange(raw_key, "-", "+"):
                parts.append(entry_id)
                for field, value in fields.items():
                    parts += [field, value]
            for group in client.xinfo_groups(raw_key):
                parts.append(repr(group).encode())
                for consumer in client.xinfo_consumers(raw_key, group["name"]):
                    parts.append(repr(consumer).encode())
        else:
            raise AssertionError(f"unexpected Redis type {kind} for {key}")
        dump[key] = b"\0".join(parts)
    return dump


def test_the_session_minted_secrets_to_look_for(journey_done: list[str]) -> None:
    assert set(journey_done) <= MINTED.secrets
    assert len(MINTED.secrets) >= len(journey_done) >= 9
    for token in MINTED.secrets:
        assert len(token) == 70 and token[:5] in {"klak_", "klsk_"}, token[:5]


def test_the_scan_finds_a_planted_secret(e2e_redis: redis.Redis) -> None:
    """The scan itself works: a secret part planted in a stream entry is found."""
    namespace = unique_namespace()
    MINTED.namespaces.append(namespace)  # deleted with the others at the end
    planted = forge("klsk")
    e2e_redis.xadd(f"{namespace}:{{p00}}:log", {"data": f"x{secret_part(planted)}x"})
    e2e_redis.hset(f"{namespace}:other", mapping={"a": "b"})

    dump = redis_dump(e2e_redis, namespace)

    assert set(dump) == {f"{namespace}:{{p00}}:log", f"{namespace}:other"}
    assert secret_part(planted).encode() in dump[f"{namespace}:{{p00}}:log"]


def test_no_secret_in_any_redis_key(journey_done: list[str], e2e_redis: redis.Redis) -> None:
    dumps: dict[str, bytes] = {}
    for namespace in MINTED.namespaces:
        dumps.update(redis_dump(e2e_redis, namespace))
    assert any(key.endswith(":log") for key in dumps), "nothing was scanned"
    assert any(b"$argon2id$" in value for value in dumps.values())  # hashes only

    leaks = [
        (label, key)
        for key, value in dumps.items()
        for label, needle in needles()
        if needle in value
    ]
    assert leaks == [], f"secrets found in Redis: {leaks[:10]}"


def test_no_secret_in_any_process_log(journey_done: list[str]) -> None:
    files = [path for path in MINTED.log_files if path.exists()]
    assert len(files) >= 4
    contents = {path: path.read_bytes() for path in files}
    assert any(b"denied" in text for text in contents.values())  # the auth log was written

    json_logs = [text for text in contents.values() if b'"logger": "keyledger.request"' in text]
    assert json_logs, "no JSON request log was scanned"

    leaks = [
        (label, path.name)
        for path, text in contents.items()
        for label, needle in needles()
        if needle in text
    ]
    assert leaks == [], f"secrets found in logs: {leaks[:10]}"


def test_only_the_creating_response_ever_shows_a_secret(journey_done: list[str]) -> None:
    assert MINTED.responses
    for request_line, status, body in MINTED.responses:
        for label, needle in needles():
            if needle.decode() not in body:
                continue
            where = f"{label} shown by {request_line} ({status})"
            payload = json.loads(body)
            assert isinstance(payload, dict), where
            shown = payload.pop("secretKey", "")
            assert needle.decode() in shown, where
            assert needle.decode() not in json.dumps(payload), where
            assert request_line.startswith("POST "), where
            path = request_line.split(" ", 1)[1].split("?", 1)[0]
            # created (201), or a rotation's new secret (200); 202: recorded, not yet in effect
            assert status in {201, 202} or (status == 200 and path.endswith("/rotate")), where


def test_no_request_of_the_session_got_a_server_error(journey_done: list[str]) -> None:
    lines = [
        line
        for path in MINTED.access_logs
        if path.exists()
        for line in path.read_text(errors="replace").splitlines()
    ]
    parsed = [m.groups() for line in lines if (m := ACCESS_LINE.search(line))]
    assert len(parsed) >= 20, "the plain access lines were not found (their format changed?)"
    parsed += [
        (str(entry["request_id"]), str(entry["status"]))
        for line in lines
        if line.startswith('{"') and '"logger": "keyledger.request"' in line
        for entry in [json.loads(line)]
    ]
    assert len(parsed) >= 20, "the access logs were not found"
    errors = [
        (rid, status)
        for rid, status in parsed
        if status.startswith("5") and status != "503" and not rid.startswith(KNOWN_BUG_PREFIX)
    ]
    assert errors == []


def test_no_projector_crashed_or_halted(journey_done: list[str]) -> None:
    for path in MINTED.log_files:
        if "projector" in path.name and path.exists():
            text = path.read_text(errors="replace")
            assert "Traceback" not in text, path
            assert "HALTED" not in text, path
