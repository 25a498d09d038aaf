"""A previous secret in its grace period may read but not change keys or users (second
review, finding F): with it the review rotated its own key again, received a fresh
current secret and ended the legitimate newer one."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from keyledger.bootstrap import Container
from keyledger.domain.events import OPERATOR
from tests.integration.helpers import Bootstrapped

OTHER = "other-key-0001"


@pytest.fixture
def rotated(client: FlaskClient, owner: Bootstrapped, container: Container) -> tuple[str, str]:
    """The owner's key rotated with a grace period: (previous secret, current secret)."""
    container.ledger.create_secret_key(owner.account_id, OTHER, owner.owner_id, (), OPERATOR)
    response = client.post(
        f"/v1/api-keys/{owner.key_name}/rotate",
        headers=keys(owner, owner.secret_key),
        json={"gracePeriodSeconds": 3600},
    )
    assert response.status_code == 200
    return owner.secret_key, response.get_json()["secretKey"]


def keys(owner: Bootstrapped, secret: str) -> dict[str, str]:
    return {"x-api-key": owner.account_key, "x-api-secret-key": secret}


def changes(owner: Bootstrapped) -> list[tuple[str, str, dict[str, Any] | None]]:
    own = owner.key_name
    return [
        ("POST", f"/v1/api-keys/{own}/rotate", {"gracePeriodSeconds": 0}),
        ("POST", f"/v1/api-keys/{OTHER}/rotate", {}),
        ("PUT", f"/v1/api-keys/{own}", {"description": "mine now"}),
        ("PUT", f"/v1/api-keys/{OTHER}", {"enabled": False}),
        ("DELETE", f"/v1/api-keys/{OTHER}", None),
        ("POST", f"/v1/api-keys/{OTHER}/allowed-source-ips", {"cidr": "10.0.0.0/16"}),
        ("DELETE", f"/v1/api-keys/{OTHER}/allowed-source-ips?cidr=10.0.0.0/16", None),
        ("POST", "/v1/api-keys", {"name": "leaker-key-001", "userId": owner.owner_id}),
        ("POST", "/v1/users", {"name": "Eve", "email": "eve@x.io", "role": "Owner"}),
        ("PUT", f"/v1/users/{owner.owner_id}", {"role": "Viewer"}),
        ("DELETE", f"/v1/users/{owner.owner_id}", None),
        ("PUT", f"/v1/API-KEYS/{own}", {"description": "any spelling"}),
    ]


def test_a_previous_secret_may_change_no_key_and_no_user(
    client: FlaskClient, owner: Bootstrapped, container: Container, rotated: tuple[str, str]
) -> None:
    previous, current = rotated
    version = container.store.version(owner.account_id)
    for method, path, body in changes(owner):
        response = client.open(path, method=method, headers=keys(owner, previous), json=body)
        assert response.status_code == 403, (method, path)
        error = response.get_json()["error"]
        assert error["code"] == "previous_secret_read_only", (method, path)
        assert "current secret" in error["description"]
    assert container.store.version(owner.account_id) == version  # nothing written
    assert client.get("/v1/", headers=keys(owner, current)).status_code == 200


def test_a_previous_secret_still_reads(
    client: FlaskClient, owner: Bootstrapped, rotated: tuple[str, str]
) -> None:
    previous, _ = rotated
    for path in ("/v1/", "/v1/api-keys", f"/v1/api-keys/{OTHER}", "/v1/users", "/v1/logs"):
        assert client.get(path, headers=keys(owner, previous)).status_code == 200, path


def test_the_current_secret_keeps_every_right(
    client: FlaskClient, owner: Bootstrapped, rotated: tuple[str, str]
) -> None:
    _, current = rotated
    put = client.put(
        f"/v1/api-keys/{OTHER}", headers=keys(owner, current), json={"description": "fine"}
    )
    assert put.status_code == 200
    again = client.post(
        f"/v1/api-keys/{owner.key_name}/rotate", headers=keys(owner, current), json={}
    )
    assert again.status_code == 200
