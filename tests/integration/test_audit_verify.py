"""``GET /v1/audit/verify``: the account's hash chain recomputed for its Owners and Logs
Viewers (the console's History tab calls it), as ``keyledger audit verify --account`` does."""

from __future__ import annotations

import redis
from flask.testing import FlaskClient

from keyledger.adapters.audit import ChainAuditor
from keyledger.bootstrap import Container
from tests.integration.helpers import Bootstrapped


def keys(b: Bootstrapped, secret: str | None = None) -> dict[str, str]:
    return {"x-api-key": b.account_key, "x-api-secret-key": secret or b.secret_key}


def add_user_with_key(client: FlaskClient, owner: Bootstrapped, role: str, key_name: str) -> str:
    user = client.post(
        "/v1/users",
        headers=keys(owner),
        json={"name": f"A {role}", "email": f"{key_name}@example.com", "role": role},
    ).get_json()
    created = client.post(
        "/v1/api-keys", headers=keys(owner), json={"name": key_name, "userId": user["id"]}
    ).get_json()
    secret: str = created["secretKey"]
    return secret


def test_verify_reports_what_the_cli_computes_for_the_account(
    client: FlaskClient, owner: Bootstrapped, container: Container
) -> None:
    response = client.get("/v1/audit/verify", headers=keys(owner))

    assert response.status_code == 200
    expected = ChainAuditor(container.store).verify(owner.account_id).as_dict()
    assert response.get_json() == expected
    assert expected["ok"] is True and expected["events"] == 5 and expected["accounts"] == 1


def test_a_logs_viewer_may_verify_and_a_viewer_may_not(
    client: FlaskClient, owner: Bootstrapped
) -> None:
    auditor = add_user_with_key(client, owner, "Logs Viewer", "auditor-key-01")
    viewer = add_user_with_key(client, owner, "Viewer", "viewer-key-001")

    assert client.get("/v1/audit/verify", headers=keys(owner, auditor)).status_code == 200
    assert client.get("/v1/audit/verify", headers=keys(owner, viewer)).status_code == 403
    assert client.get("/v1/audit/verify").status_code == 401


def test_verify_names_the_first_broken_link(
    client: FlaskClient, owner: Bootstrapped, container: Container, redis_client: redis.Redis
) -> None:
    redis_client.hset(container.keyspace.account_head(owner.account_id), "hash", "a" * 64)

    report = client.get("/v1/audit/verify", headers=keys(owner)).get_json()

    assert report["ok"] is False
    assert report["brokenLink"]["accountId"] == owner.account_id
    assert report["brokenLink"]["stream"] == "head"
    assert report["brokenLink"]["reason"]


def test_verify_is_in_the_openapi_document(client: FlaskClient) -> None:
    doc = client.get("/v1/openapi.json").get_json()
    operation = doc["paths"]["/v1/audit/verify"]["get"]
    assert "hash chain" in operation["summary"] + operation.get("description", "")
    assert "AuditReport" in str(operation["responses"]["200"])
