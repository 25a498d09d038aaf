"""Authentication end to end: bootstrap with the CLI, then both headers on every call.

Every authentication failure must look the same from outside (status, body and
headers, apart from ``Date`` and ``X-Request-Id``), whatever the real reason.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
import requests

from tests.e2e.client import error_of
from tests.e2e.harness import (
    Stack,
    Tenant,
    WebServer,
    burst,
    forge,
    key_id_of,
    statuses,
    wait_for,
    with_bad_checksum,
)

pytestmark = pytest.mark.e2e

#: The date and request id change with every response; ``Connection: close`` is the server's
#: connection management, not the answer: Granian closes a connection whose request body it
#: has not read when the answer is ready (a 401 sent before a GET's unread JSON body arrived),
#: which depends on timing, never on the keys presented.
VOLATILE_HEADERS = {"date", "x-request-id", "connection", "keep-alive"}


Signature = tuple[int, bytes, tuple[tuple[str, str], ...]]


def signature(response: requests.Response) -> Signature:
    """What a client can observe of a response, apart from the date and request id."""
    headers = sorted(
        (name.lower(), value)
        for name, value in response.headers.items()
        if name.lower() not in VOLATILE_HEADERS
    )
    return response.status_code, response.content, tuple(headers)


@pytest.fixture(scope="module")
def other(stack: Stack) -> Tenant:
    """A second account, for cross-account attempts."""
    return stack.bootstrap("Globex")


@pytest.fixture(scope="module")
def reference_401(web: WebServer) -> requests.Response:
    """The 401 for a request with no keys at all: every other failure must equal it."""
    response = web.client().get("/v1/", expect=401)
    error = error_of(response)
    assert error["code"] == "unauthenticated"
    return response


def test_bootstrap_then_whoami_describes_the_calling_key(tenant: Tenant) -> None:
    account = tenant.owner.whoami()["account"]

    assert account["id"] == tenant.account_id
    assert account["name"] == tenant.name
    key = account["key"]
    assert key["name"] == tenant.key_name
    assert key["accountId"] == tenant.account_id
    assert key["accountName"] == tenant.name
    assert key["allowedSourceIps"] == []
    assert key["owner"] == {"name": tenant.owner_name, "email": tenant.owner_email}
    assert key["httpSourceIp"] == "127.0.0.1"
    created = datetime.fromisoformat(key["createdTimestamp"].replace("Z", "+00:00"))
    assert created.tzinfo is not None
    assert "secretKey" not in key


def test_every_worker_accepts_the_keys(tenant: Tenant) -> None:
    assert statuses(burst(tenant.owner, n=12)) == [200] * 12


def test_public_endpoints_need_no_keys(web: WebServer) -> None:
    anonymous = web.client()
    assert anonymous.get("/healthz", expect=200).json() == {"status": "ok"}
    spec = anonymous.get("/v1/openapi.json", expect=200).json()
    assert "/v1/api-keys" in spec["paths"]


KeyPair = tuple[str | None, str | None]
Case = Callable[[Tenant, Tenant], KeyPair]

FAILURES: dict[str, Case] = {
    "no account key": lambda t, o: (None, t.secret_key),
    "no secret key": lambda t, o: (t.account_key, None),
    "empty headers": lambda t, o: ("", ""),
    "unknown account key": lambda t, o: (forge("klak"), t.secret_key),
    "unknown secret key": lambda t, o: (t.account_key, forge("klsk")),
    "wrong secret behind the real account key id": lambda t, o: (
        forge("klak", key_id_of(t.account_key)),
        t.secret_key,
    ),
    "wrong secret behind the real secret key id": lambda t, o: (
        t.account_key,
        forge("klsk", key_id_of(t.secret_key)),
    ),
    "key id of a partition that does not exist": lambda t, o: (
        t.account_key,
        forge("klsk", partition=0xFE),
    ),
    "account key with a bad checksum": lambda t, o: (
        with_bad_checksum(t.account_key),
        t.secret_key,
    ),
    "secret key with a bad checksum": lambda t, o: (
        t.account_key,
        with_bad_checksum(t.secret_key),
    ),
    "truncated secret key": lambda t, o: (t.account_key, t.secret_key[:-1]),
    "secret key with one character more": lambda t, o: (t.account_key, t.secret_key + "x"),
    "garbage": lambda t, o: ("hello", "world"),
    "non-ASCII": lambda t, o: (t.account_key, "klsk_" + "\u00e9" * 65),
    "oversized value": lambda t, o: (t.account_key, "klsk_" + "a" * 4000),
    "account key in the secret header": lambda t, o: (t.account_key, t.account_key),
    "secret key in the account header": lambda t, o: (t.secret_key, t.secret_key),
    "headers swapped": lambda t, o: (t.secret_key, t.account_key),
    "secret key of another account": lambda t, o: (t.account_key, o.secret_key),
    "account key of another account": lambda t, o: (o.account_key, t.secret_key),
}


@pytest.mark.parametrize("case", FAILURES, ids=list(FAILURES))
def test_every_authentication_failure_is_the_identical_401(
    case: str,
    tenant: Tenant,
    other: Tenant,
    web: WebServer,
    reference_401: requests.Response,
) -> None:
    account_key, secret_key = FAILURES[case](tenant, other)
    client = web.client(account_key, secret_key)

    response = client.get("/v1/", expect=401)

    assert signature(response) == signature(reference_401)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/users"),
        ("POST", "/v1/users"),
        ("DELETE", "/v1/api-keys/some-key-name"),
        ("GET", "/v1/logs"),
        ("GET", "/v1/events"),
        ("GET", "/v1/no-such-endpoint"),
    ],
)
def test_every_endpoint_denies_by_default_with_the_same_401(
    method: str, path: str, web: WebServer, reference_401: requests.Response
) -> None:
    response = web.client().request(method, path, json={"name": "x"}, expect=401)
    assert signature(response) == signature(reference_401)


def test_cross_account_keys_are_refused_but_each_pair_works(
    tenant: Tenant, other: Tenant, web: WebServer, reference_401: requests.Response
) -> None:
    tenant.owner.whoami()
    other.owner.whoami()

    mixed = [
        web.client(tenant.account_key, other.secret_key),
        web.client(other.account_key, tenant.secret_key),
    ]

    for client in mixed:
        for response in burst(client, n=4):
            assert signature(response) == signature(reference_401)


@pytest.fixture(scope="module")
def operated(stack: Stack) -> Tenant:
    """An account the operator switches off and on and rotates the key of."""
    return stack.bootstrap("Initech")


def test_disabled_api_refuses_every_request_until_enabled_again(
    stack: Stack, operated: Tenant, reference_401: requests.Response
) -> None:
    switched = operated
    switched.owner.whoami()

    disabled = stack.cli("api", "disable", "--account", switched.account_id)
    assert disabled == {"accountId": switched.account_id, "apiEnabled": False}
    refused = burst(switched.owner, n=6)
    assert {signature(r) for r in refused} == {signature(reference_401)}

    enabled = stack.cli("api", "enable", "--account", switched.account_id)
    assert enabled == {"accountKey": None}  # the existing account key works again
    assert statuses(burst(switched.owner, n=6)) == [200] * 6


def test_enabling_an_enabled_api_is_a_conflict_reported_by_the_cli(
    stack: Stack, tenant: Tenant
) -> None:
    # The tenant's API is enabled: enabling it again is a conflict and changes nothing.
    completed = stack.cli_run("api", "enable", "--account", tenant.account_id, "--json")
    assert completed.returncode != 0
    assert '"status": 409' in completed.stdout
    tenant.owner.whoami()


def test_rotated_account_key_replaces_the_old_one_at_once(
    stack: Stack, web: WebServer, operated: Tenant, reference_401: requests.Response
) -> None:
    rotating = operated
    old = rotating.owner
    old.whoami()

    new_key = stack.cli("account-key", "rotate", "--account", rotating.account_id)["accountKey"]
    assert new_key.startswith("klak_") and new_key != rotating.account_key
    rotating.account_key, rotating.owner = new_key, web.client(new_key, rotating.secret_key)

    first = old.get("/v1/")
    assert signature(first) == signature(reference_401)
    assert {signature(r) for r in burst(old, n=6)} == {signature(reference_401)}
    new = web.client(new_key, rotating.secret_key)
    assert new.whoami()["account"]["key"]["name"] == rotating.key_name
    assert statuses(burst(new, n=6)) == [200] * 6


def test_rotation_for_an_unknown_account_fails_cleanly(stack: Stack) -> None:
    completed = stack.cli_run("account-key", "rotate", "--account", "no-such-account", "--json")
    assert completed.returncode != 0
    assert '"status": 404' in completed.stdout
    assert "Traceback" not in completed.stderr


def test_a_header_too_large_for_the_server_is_a_4xx(tenant: Tenant, web: WebServer) -> None:
    client = web.client(tenant.account_key, "klsk_" + "a" * 9000)
    response = client.get("/v1/")
    assert 400 <= response.status_code < 500
    tenant.owner.whoami()


def test_a_request_path_cannot_forge_a_server_log_line(web: WebServer) -> None:
    forged = "FORGED keyledger.auth: granted everything"
    response = web.client().get(f"/v1/x%0A{forged.replace(' ', '%20')}%0D%0Ay", expect=401)
    request_id = response.headers["X-Request-Id"]

    wait_for(lambda: request_id in web.log_text(), timeout=5, what="the denial to be logged")
    lines = web.log_text().splitlines()
    assert not [line for line in lines if line.startswith("FORGED")]
    denial = [line for line in lines if request_id in line and "denied" in line]
    assert len(denial) == 1 and forged in denial[0]
