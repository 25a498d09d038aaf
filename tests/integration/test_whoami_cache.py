"""``GET /v1/`` rendered once per key pair and served until the account changes
(``app.web.whoami``): a change shows on the next request in every process, each
caller sees its own address, time-dependent fields turn when their instant comes.

Two apps on two containers stand for two web processes sharing the test's Redis.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from flask.testing import FlaskClient

from keyledger import create_app
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from keyledger.domain import commands as cmd
from keyledger.domain.events import OPERATOR
from keyledger.web.whoami import USES_SECONDS, WhoAmICache
from tests.integration.helpers import Bootstrapped, bootstrap
from tests.integration.lifecycle_helpers import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def container(settings: Settings, redis_client: Any, clock: Clock) -> Container:
    return build(settings, clock=clock)


@pytest.fixture
def other(settings: Settings, clock: Clock) -> Container:
    """Another web process's container."""
    return build(settings, clock=clock)


def app_client(container: Container) -> FlaskClient:
    assert container.auth_cache.wait_until_subscribed()
    return create_app({"container": container, "TESTING": True}).test_client()


def bodies(client: FlaskClient) -> WhoAmICache:
    return client.application.extensions["keyledger.whoami"]  # type: ignore[no-any-return]


def whoami(client: FlaskClient, b: Bootstrapped, source: str = "127.0.0.1") -> dict[str, Any]:
    response = client.get(
        "/v1/",
        headers={"x-api-key": b.account_key, "x-api-secret-key": b.secret_key},
        environ_base={"REMOTE_ADDR": source},
    )
    assert response.status_code == 200, response.get_data()
    return response.get_json()["account"]  # type: ignore[no-any-return]


def test_a_second_request_is_served_from_the_rendered_body_byte_for_byte(
    container: Container, owner: Bootstrapped
) -> None:
    client = app_client(container)
    headers = {"x-api-key": owner.account_key, "x-api-secret-key": owner.secret_key}
    first = client.get("/v1/", headers=headers)
    hits = bodies(client).hits
    second = client.get("/v1/", headers=headers)
    assert bodies(client).hits == hits + 1
    assert second.get_data() == first.get_data()
    assert second.mimetype == "application/json"
    assert second.headers["X-Request-Id"] and second.headers["Cache-Control"] == "no-store"


def test_each_caller_sees_its_own_source_address(container: Container, owner: Bootstrapped) -> None:
    client = app_client(container)
    assert whoami(client, owner, "10.1.2.3")["key"]["httpSourceIp"] == "10.1.2.3"
    hits = bodies(client).hits
    assert whoami(client, owner, "2001:db8::7")["key"]["httpSourceIp"] == "2001:db8::7"
    assert whoami(client, owner, "10.1.2.3")["key"]["httpSourceIp"] == "10.1.2.3"
    assert bodies(client).hits == hits + 2


def test_a_change_shows_on_the_next_request_in_every_process(
    container: Container, other: Container, owner: Bootstrapped
) -> None:
    here, there = app_client(container), app_client(other)
    for client in (here, there, here, there):  # rendered and served from memory in both
        whoami(client, owner)
    ledger = container.ledger

    ledger.update_user(owner.account_id, owner.owner_id, "Ann Renamed", None, OPERATOR)
    assert [whoami(c, owner)["key"]["owner"]["name"] for c in (here, there)] == ["Ann Renamed"] * 2

    ledger.allow_subnet(owner.account_id, owner.key_name, "127.0.0.0/8", OPERATOR)
    shown = [whoami(c, owner)["key"]["allowedSourceIps"] for c in (here, there)]
    assert shown == [["127.0.0.0/8"]] * 2

    ledger.update_secret_key(
        cmd.UpdateSecretKey(
            account_id=owner.account_id, name=owner.key_name, description="deploys from CI"
        ),
        OPERATOR,
    )
    assert [whoami(c, owner)["key"]["description"] for c in (here, there)] == [
        "deploys from CI"
    ] * 2

    ledger.rotate_account_key(owner.account_id, OPERATOR, grace_seconds=3600)
    # The previous account key, still in its grace: both processes say when it stops.
    assert all(whoami(c, owner)["accountKey"]["expiresTimestamp"] for c in (here, there))


def test_the_grace_of_a_previous_secret_disappears_when_it_ends(
    container: Container, owner: Bootstrapped, clock: Clock
) -> None:
    client = app_client(container)
    secret, _ = container.ledger.rotate_secret_key(owner.account_id, owner.key_name, 60, OPERATOR)
    current = dataclasses.replace(owner, secret_key=secret)
    assert whoami(client, current)["key"]["previousSecretExpiresTimestamp"] is not None
    assert whoami(client, current)["key"]["previousSecretExpiresTimestamp"] is not None
    clock.advance(seconds=61)
    assert whoami(client, current)["key"]["previousSecretExpiresTimestamp"] is None


def test_another_process_s_last_uses_show_within_a_second(
    container: Container, other: Container, owner: Bootstrapped
) -> None:
    client = app_client(container)
    assert whoami(client, owner)["key"]["lastUsedTimestamp"] is None
    other.last_use.note([owner.secret_key[5:21]], "10.9.9.9")
    other.last_use.flush()
    time.sleep(USES_SECONDS)
    assert whoami(client, owner)["key"]["lastUsedSourceIp"] == "10.9.9.9"


def test_the_rendered_bodies_are_bounded_by_the_cache_size(
    settings: Settings, redis_client: Any, projector: Any
) -> None:
    container = build(dataclasses.replace(settings, auth_cache_size=2))
    tenants = [bootstrap(container, f"Tenant {n}") for n in range(3)]
    client = app_client(container)
    for _ in range(2):
        for tenant in tenants:
            assert whoami(client, tenant)["id"] == tenant.account_id
    assert len(bodies(client)) == 2


# -- answered before Flask ---------------------------------------------------------------------
def calls_to_flask(client: FlaskClient) -> list[str]:
    """Counts the requests that reach Flask's own WSGI app (past every fast path)."""
    app = client.application
    seen: list[str] = []
    original = app.full_dispatch_request

    def counting() -> Any:
        seen.append("flask")
        return original()

    app.full_dispatch_request = counting  # type: ignore[method-assign]
    return seen


def test_a_kept_body_is_answered_before_flask_with_the_same_headers(
    container: Container, owner: Bootstrapped
) -> None:
    client = app_client(container)
    flask = calls_to_flask(client)
    headers = {
        "x-api-key": owner.account_key,
        "x-api-secret-key": owner.secret_key,
        "X-Request-Id": "rid-42",
    }
    rendered = client.get("/v1/", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert flask == ["flask"]
    kept = client.get("/v1/", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert flask == ["flask"]  # the second never reached Flask
    assert kept.status_code == rendered.status_code == 200
    assert kept.get_data() == rendered.get_data()
    remaining = int(rendered.headers["X-Rate-Limit-Remaining"])
    assert int(kept.headers["X-Rate-Limit-Remaining"]) == remaining - 1
    del kept.headers["X-Rate-Limit-Remaining"], rendered.headers["X-Rate-Limit-Remaining"]
    assert sorted(kept.headers.items()) == sorted(rendered.headers.items())


def test_the_fast_path_keeps_the_rate_limit_and_its_headers(
    settings: Settings, owner: Bootstrapped
) -> None:
    client = app_client(build(dataclasses.replace(settings, rate_limit_per_minute=3)))
    headers = {"x-api-key": owner.account_key, "x-api-secret-key": owner.secret_key}
    answers = [client.get("/v1/", headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-Rate-Limit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 60


def test_refusals_and_redis_failures_are_answered_as_flask_answers_them(
    container: Container, owner: Bootstrapped
) -> None:
    client = app_client(container)
    good = {"x-api-key": owner.account_key, "x-api-secret-key": owner.secret_key}
    for _ in range(2):
        assert client.get("/v1/", headers=good).status_code == 200
    wrong = {**good, "x-api-secret-key": owner.account_key}
    refused = client.get("/v1/", headers=wrong)
    assert refused.status_code == 401 and refused.get_json()["error"]["code"]
    argon2 = container.hasher.argon2_verifications
    assert client.get("/v1/", headers={}).status_code == 401
    assert container.hasher.argon2_verifications == argon2  # decided once, not twice
    container.ledger.disable_api(owner.account_id, OPERATOR)
    assert client.get("/v1/", headers=good).status_code == 401


def test_a_redis_failure_on_the_fast_path_is_a_503_decided_once(
    container: Container, owner: Bootstrapped
) -> None:
    client = app_client(container)
    good = {"x-api-key": owner.account_key, "x-api-secret-key": owner.secret_key}
    gate = client.application.extensions["keyledger.gate"]
    calls: list[int] = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        from keyledger.domain.errors import StoreUnavailable

        calls.append(1)
        raise StoreUnavailable("storage unavailable: ConnectionError")

    gate.authenticator.authenticate = failing
    answer = client.get("/v1/", headers=good)
    assert answer.status_code == 503 and calls == [1]
