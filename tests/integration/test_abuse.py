"""Abuse resistance: rate limit, failure throttling, forward auth, the Flask extension."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from flask import Flask, g
from flask.testing import FlaskClient

from keyledger import create_app
from keyledger.authn.throttle import ThrottleLimits
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from keyledger.domain.events import OPERATOR
from keyledger.domain.tokens import KeyKind, generate
from keyledger.web.extension import KeyLedger, require_api_key
from tests.integration.helpers import Bootstrapped, early_in_a_minute, forged


def app_client(settings: Settings) -> FlaskClient:
    return create_app({"container": build(settings)}).test_client()


def keys(b: Bootstrapped, secret: str | None = None) -> dict[str, str]:
    return {"x-api-key": b.account_key, "x-api-secret-key": secret or b.secret_key}


def test_rate_limit_counts_per_account_key_with_remaining_header(
    settings: Settings, owner: Bootstrapped
) -> None:
    client = app_client(dataclasses.replace(settings, rate_limit_per_minute=3))
    remaining = [
        client.get("/v1/", headers=keys(owner)).headers["X-Rate-Limit-Remaining"] for _ in range(3)
    ]
    assert remaining == ["2", "1", "0"]
    refused = client.get("/v1/", headers=keys(owner))
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.get_json()["error"]["code"] == "too_many_requests"


def test_rate_limit_zero_turns_it_off(settings: Settings, owner: Bootstrapped) -> None:
    client = app_client(dataclasses.replace(settings, rate_limit_per_minute=0))
    response = client.get("/v1/", headers=keys(owner))
    assert response.status_code == 200 and "X-Rate-Limit-Remaining" not in response.headers


def test_repeated_failures_from_one_source_are_throttled_before_any_argon2(
    settings: Settings, owner: Bootstrapped
) -> None:
    # The per-minute counts alone: the ceiling per second is tests/integration/test_hash_floods.py.
    per_minute = ThrottleLimits(failed_verifications_per_second=0)
    container = build(dataclasses.replace(settings, throttle=per_minute))
    client = create_app({"container": container}).test_client()
    wrong = generate(KeyKind.SECRET, 0).token
    early_in_a_minute()
    statuses = [client.get("/v1/", headers=keys(owner, wrong)).status_code for _ in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    argon2 = container.hasher.argon2_verifications
    throttled = client.get("/v1/", headers=keys(owner, wrong))
    assert throttled.status_code == 429 and "Retry-After" in throttled.headers
    assert container.hasher.argon2_verifications == argon2


def test_a_flood_against_a_key_does_not_lock_out_its_owner(
    settings: Settings, owner: Bootstrapped
) -> None:
    """Well-formed wrong secrets for the owner's key id (valid checksum: anyone can make
    them) throttle the flooding source for that key id, not the key: its owner, calling
    from elsewhere, is served. The per-minute counts alone: the per-second ceiling on
    failed verifications has its own tests (test_hash_floods.py)."""
    per_minute = ThrottleLimits(failed_verifications_per_second=0)
    container = build(dataclasses.replace(settings, throttle=per_minute))
    client = create_app({"container": container}).test_client()
    wrong = forged(owner.secret_key)
    assert wrong[5:21] == owner.secret_key[5:21] and wrong != owner.secret_key
    early_in_a_minute()
    flood = [
        client.get(
            "/v1/", headers=keys(owner, wrong), environ_base={"REMOTE_ADDR": "203.0.113.9"}
        ).status_code
        for _ in range(30)
    ]
    per_key = per_minute.failures_per_source_and_key
    assert flood[:per_key] == [401] * per_key  # each one verified and refused
    assert set(flood[per_key:]) == {429}  # counted against this key id from this source
    assert per_key < 30 < per_minute.failures_per_source  # not the per-source limit
    owner_elsewhere = client.get(
        "/v1/", headers=keys(owner), environ_base={"REMOTE_ADDR": "198.51.100.7"}
    )
    assert owner_elsewhere.status_code == 200


def test_unknown_key_ids_cost_an_argon2_like_wrong_secrets(
    container: Container, owner: Bootstrapped
) -> None:
    before = container.hasher.argon2_verifications
    result = container.authenticator.authenticate(
        method="GET",
        path="/v1/",
        source_ip="127.0.0.1",
        account_key=generate(KeyKind.ACCOUNT, 0).token,
        secret_key=owner.secret_key,
    )
    assert not result.allowed
    assert container.hasher.argon2_verifications == before + 1


def forward(client: FlaskClient, b: Bootstrapped, method: str, uri: str, secret: str | None = None):
    return client.get(
        "/v1/auth/check",
        headers={**keys(b, secret), "X-Original-Method": method, "X-Original-URI": uri},
    )


def test_the_forward_fast_path_keeps_the_rate_limit_and_says_what_remains(
    settings: Settings, owner: Bootstrapped
) -> None:
    """Admitted checks are answered by the WSGI fast path (not the Flask view): it must
    refuse what the limit refuses and pass X-Rate-Limit-Remaining on."""
    client = app_client(dataclasses.replace(settings, rate_limit_per_minute=3))
    answers = [forward(client, owner, "GET", "/v1/users") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers.get("X-Rate-Limit-Remaining") for a in answers[:3]] == ["2", "1", "0"]
    assert all(a.headers["X-Account-Id"] == owner.account_id for a in answers[:3])
    refused = answers[3]
    assert "X-Account-Id" not in refused.headers
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_forward_auth_answers_who_the_caller_is(container: Container, owner: Bootstrapped) -> None:
    client = create_app({"container": container}).test_client()
    response = forward(client, owner, "POST", "/orders/42?x=1")
    assert response.status_code == 200
    assert response.headers["X-Account-Id"] == owner.account_id
    assert response.headers["X-Api-Key-Name"] == owner.key_name
    assert response.headers["X-User-Id"] == owner.owner_id
    assert response.headers["X-User-Role"] == "Owner"


def test_forward_auth_applies_the_role_to_the_original_method(
    container: Container, owner: Bootstrapped
) -> None:
    user_id, _ = container.ledger.add_user(owner.account_id, "Vic", "v@x.io", "Viewer", OPERATOR)
    secret, _ = container.ledger.create_secret_key(
        owner.account_id, "viewer-key-01", user_id, (), OPERATOR
    )
    client = create_app({"container": container}).test_client()
    assert forward(client, owner, "GET", "/orders", secret).status_code == 200
    assert forward(client, owner, "DELETE", "/orders/1", secret).status_code == 403
    assert (
        forward(client, owner, "GET", "/orders", generate(KeyKind.SECRET, 0).token).status_code
        == 401
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Original-Method": "GET"},
        {"X-Original-Method": "get x", "X-Original-URI": "/"},
        {"X-Original-Method": "GET", "X-Original-URI": "orders"},
    ],
)
def test_forward_auth_without_the_original_request_is_400(
    container: Container, owner: Bootstrapped, headers: dict[str, str]
) -> None:
    client = create_app({"container": container}).test_client()
    assert client.get("/v1/auth/check", headers={**keys(owner), **headers}).status_code == 400


@pytest.fixture
def service(settings: Settings) -> Iterator[FlaskClient]:
    app = Flask("orders")
    KeyLedger(app, settings)

    @app.get("/orders")
    @require_api_key
    def orders() -> dict[str, str]:
        return {"account": g.principal.account_id}

    @app.post("/orders")
    @require_api_key
    def create_order() -> dict[str, str]:
        return {"ok": "yes"}

    with app.test_client() as client:
        yield client


def test_the_flask_extension_authenticates_in_process(
    service: FlaskClient, container: Container, owner: Bootstrapped
) -> None:
    assert service.get("/orders", headers=keys(owner)).get_json() == {"account": owner.account_id}
    assert service.get("/orders").status_code == 401
    container.ledger.delete_secret_key(owner.account_id, owner.key_name, OPERATOR)
    assert service.get("/orders", headers=keys(owner)).status_code == 401


def test_the_flask_extension_fails_closed_when_redis_is_down(owner: Bootstrapped) -> None:
    app = Flask("orders")
    KeyLedger(app, Settings(redis_url="redis://127.0.0.1:1/0", redis_timeout=0.2))

    @app.get("/orders")
    @require_api_key
    def orders() -> str:
        return "never"

    assert app.test_client().get("/orders", headers=keys(owner)).status_code == 503


def test_the_forward_fast_path_answers_as_the_flask_view_would(
    container: Container, owner: Bootstrapped
) -> None:
    app = create_app({"container": container})
    headers = {**keys(owner), "X-Original-Method": "GET", "X-Original-URI": "/orders"}
    fast = app.test_client().get("/v1/auth/check", headers=headers)
    app.wsgi_app = app.wsgi_app.app  # type: ignore[attr-defined,method-assign]  # bypass
    slow = app.test_client().get("/v1/auth/check", headers=headers)
    assert fast.status_code == slow.status_code == 200
    names = ("X-Account-Id", "X-Api-Key-Name", "X-User-Id", "X-User-Role", "Cache-Control")
    assert {n: fast.headers[n] for n in names} == {n: slow.headers[n] for n in names}


def test_behind_traefik_a_client_cannot_name_the_request_to_decide(
    settings: Settings, container: Container, owner: Bootstrapped
) -> None:
    user_id, _ = container.ledger.add_user(owner.account_id, "Vic", "v@x.io", "Viewer", OPERATOR)
    secret, _ = container.ledger.create_secret_key(
        owner.account_id, "viewer-key-01", user_id, (), OPERATOR
    )
    client = app_client(dataclasses.replace(settings, forward_auth_headers="forwarded"))
    traefik = {"X-Forwarded-Method": "DELETE", "X-Forwarded-Uri": "/orders/7"}
    spoofed = {"X-Original-Method": "GET", "X-Original-URI": "/orders/7"}
    response = client.get("/v1/auth/check", headers={**keys(owner, secret), **traefik, **spoofed})
    assert response.status_code == 403
    response = client.get(
        "/v1/auth/check",
        headers={
            **keys(owner, secret),
            "X-Forwarded-Method": "GET",
            "X-Forwarded-Uri": "/orders/7",
        },
    )
    assert response.status_code == 200
