"""The Flask app in process (test client) against a real Redis and a running projector."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from keyledger import create_app
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from tests.integration.helpers import Bootstrapped, bootstrap


def headers(b: Bootstrapped, secret: str | None = None) -> dict[str, str]:
    return {"x-api-key": b.account_key, "x-api-secret-key": secret or b.secret_key}


def test_openapi_document_describes_both_key_headers(client: FlaskClient) -> None:
    doc = client.get("/v1/openapi.json").get_json()
    schemes = doc["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} == {"x-api-key", "x-api-secret-key"}
    assert "/v1/api-keys/{name}/allowed-source-ips" in doc["paths"]
    assert client.get("/v1/swagger-ui").status_code == 200


def test_unknown_route_without_keys_is_401_not_404(client: FlaskClient) -> None:
    assert client.get("/v1/nothing-here").status_code == 401


def test_unknown_route_with_keys_is_a_json_404(client: FlaskClient, owner: Bootstrapped) -> None:
    response = client.get("/v1/nothing-here", headers=headers(owner))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_wrong_method_is_a_json_405(client: FlaskClient, owner: Bootstrapped) -> None:
    response = client.patch("/v1/users", headers=headers(owner))
    assert response.status_code == 405
    assert set(response.get_json()["error"]) == {"status", "code", "description"}


def test_validation_errors_name_each_bad_field(client: FlaskClient, owner: Bootstrapped) -> None:
    response = client.post(
        "/v1/api-keys", headers=headers(owner), json={"name": "short", "userId": 7, "extra": 1}
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert set(error["fields"]) == {"name", "userId", "extra"}


def test_bad_query_parameters_are_400(client: FlaskClient, owner: Bootstrapped) -> None:
    for query in ("limit=0", "limit=1001", "offset=-1", "limit=abc", "startTime=yesterday"):
        response = client.get(f"/v1/logs?{query}", headers=headers(owner))
        assert response.status_code == 400, query


def test_invalid_json_body_is_400(client: FlaskClient, owner: Bootstrapped) -> None:
    response = client.post(
        "/v1/users",
        headers={**headers(owner), "Content-Type": "application/json"},
        data=b"{not json",
    )
    assert response.status_code == 400


def test_oversized_body_is_413(client: FlaskClient, owner: Bootstrapped) -> None:
    response = client.post(
        "/v1/users",
        headers=headers(owner),
        json={"name": "x" * 70_000, "email": "a@b.c", "role": "Owner"},
    )
    assert response.status_code == 413


def test_created_secret_is_shown_once(client: FlaskClient, owner: Bootstrapped) -> None:
    created = client.post(
        "/v1/api-keys",
        headers=headers(owner),
        json={"name": "second-key-01", "userId": owner.owner_id},
    )
    assert created.status_code == 201
    secret = created.get_json()["secretKey"]
    assert secret.startswith("klsk_")
    assert secret not in client.get("/v1/api-keys", headers=headers(owner)).get_data(as_text=True)
    item = client.get("/v1/api-keys/second-key-01", headers=headers(owner))
    assert secret not in item.get_data(as_text=True)
    assert client.get("/v1/", headers=headers(owner, secret)).status_code == 200


def test_subnets_are_stored_canonically(client: FlaskClient, owner: Bootstrapped) -> None:
    response = client.post(
        f"/v1/api-keys/{owner.key_name}/allowed-source-ips",
        headers=headers(owner),
        json={"cidr": "2001:DB8::/32"},
    )
    assert response.get_json()["allowedSourceIps"] == ["2001:db8::/32"]
    # Only IPv6 allowed now: 127.0.0.1 is refused.
    assert client.get("/v1/", headers=headers(owner)).status_code == 403


def test_logs_name_the_key_that_made_each_change(client: FlaskClient, owner: Bootstrapped) -> None:
    client.post(
        "/v1/users",
        headers=headers(owner),
        json={"name": "Vic", "email": "v@x.io", "role": "Viewer"},
    )
    entries = client.get("/v1/logs?limit=1", headers=headers(owner)).get_json()["entries"]
    assert entries[0]["apiKeyName"] == owner.key_name
    assert entries[0]["originator"] == "Ann Owner"
    assert entries[0]["resource"] == "user"


def test_every_response_carries_a_request_id(client: FlaskClient, owner: Bootstrapped) -> None:
    response = client.get("/v1/", headers={**headers(owner), "X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    response = client.get("/v1/", headers={**headers(owner), "X-Request-Id": "bad id <script>"})
    assert response.headers["X-Request-Id"] != "bad id"


def test_change_without_projector_is_202_with_a_notice(container: Container) -> None:
    # Bootstrap with a projector, then stop it and change something.
    from tests.conftest import RunningProjector

    with RunningProjector(container):
        b = bootstrap(container)
    container.ledger.apply_timeout = 0.2
    app = create_app({"container": container})
    with app.test_client() as test_client:
        response = test_client.delete(f"/v1/api-keys/{b.key_name}", headers=headers(b))
    assert response.status_code == 202
    assert "not yet in effect" in response.get_json()["notice"]


def test_redis_unreachable_is_503_never_200_or_500(redis_url: str) -> None:
    dead = build(Settings(redis_url="redis://127.0.0.1:1/0", redis_timeout=0.2))
    app = create_app({"container": dead})
    from keyledger.domain.tokens import KeyKind, generate

    ak, sk = generate(KeyKind.ACCOUNT, 0).token, generate(KeyKind.SECRET, 0).token
    with app.test_client() as test_client:
        response = test_client.get("/v1/", headers={"x-api-key": ak, "x-api-secret-key": sk})
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "service_unavailable"
        assert test_client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": ' + b"1" * 5000 + b"}",
        b"[" * 30000 + b"]" * 30000,
        b'{"a":' * 10000 + b"1" + b"}" * 10000,
        b"[1, 2, 3]",
        b'"just a string"',
        b"\xff\xfe not utf-8",
    ],
)
def test_hostile_json_bodies_are_400(client: FlaskClient, owner: Bootstrapped, body: bytes) -> None:
    response = client.post(
        "/v1/users", headers={**headers(owner), "Content-Type": "application/json"}, data=body
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "query", ["startTime=0001-01-01T00:00:00Z", "endTime=1969-01-01T00:00:00Z", "offset=1e3"]
)
def test_out_of_range_log_queries_are_400_not_503(
    client: FlaskClient, owner: Bootstrapped, query: str
) -> None:
    assert client.get(f"/v1/logs?{query}", headers=headers(owner)).status_code == 400


def test_a_path_cannot_forge_server_log_lines(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="keyledger.auth"):
        client.get("/v1/x%0A2026-11-28 06:00:00,000 INFO keyledger.auth: allowed GET /v1/users")
    assert caplog.messages and all("\n" not in message for message in caplog.messages)


def test_a_huge_path_parameter_is_a_clean_404(client: FlaskClient, owner: Bootstrapped) -> None:
    response = client.get("/v1/users/" + "u" * 100_000, headers=headers(owner))
    assert response.status_code == 404


def test_a_change_to_the_same_value_is_a_200_that_records_nothing(
    client: FlaskClient, owner: Bootstrapped, container: Container
) -> None:
    before = container.store.version(owner.account_id)
    response = client.put(
        f"/v1/users/{owner.owner_id}", headers=headers(owner), json={"role": "Owner"}
    )
    assert response.status_code == 200
    assert container.store.version(owner.account_id) == before


# -- Flask's static endpoint (issue 7, finding 8) ---------------------------------------------------
def test_the_app_has_no_static_route(client: FlaskClient) -> None:
    """Flask's default static folder would be a public route to the files beside the package."""
    rules = {rule.endpoint: rule.rule for rule in client.application.url_map.iter_rules()}
    assert "static" not in rules
    assert not any(rule.startswith("/static") for rule in rules.values())


STATIC_PATHS = [
    "/static/__init__.py",
    "/static/web/factory.py",
    "/static/../config.py",
    "/static/",
    "/static/app.js",
]


@pytest.mark.parametrize("path", STATIC_PATHS)
def test_static_paths_need_keys_like_every_route(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize("path", STATIC_PATHS)
def test_static_paths_serve_no_file_even_to_an_owner(
    client: FlaskClient, owner: Bootstrapped, path: str
) -> None:
    response = client.get(path, headers=headers(owner))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
