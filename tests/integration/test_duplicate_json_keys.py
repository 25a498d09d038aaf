"""A JSON body naming a key twice is refused with 400 on every endpoint (second review,
finding E): ``{"role": "Member", "role": "Owner"}`` made an Owner, while anything reading
the first value saw a Member."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from keyledger import create_app
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from keyledger.domain.events import OPERATOR
from tests.integration.helpers import Bootstrapped
from tests.integration.lifecycle_helpers import GitHubSigner

JSON = {"content-type": "application/json"}


def keys(owner: Bootstrapped) -> dict[str, str]:
    return {"x-api-key": owner.account_key, "x-api-secret-key": owner.secret_key, **JSON}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "POST",
            "/v1/users",
            '{"name": "Eve", "email": "eve@x.io", "role": "Member", "role": "Owner"}',
        ),
        ("PUT", "/v1/users/{user}", '{"role": "Viewer", "role": "Owner"}'),
        ("PUT", "/v1/api-keys/{key}", '{"enabled": true, "enabled": false}'),
        (
            "POST",
            "/v1/api-keys/{key}/allowed-source-ips",
            '{"cidr": "10.0.0.0/8", "cidr": "0.0.0.0/0"}',
        ),
        (
            "POST",
            "/v1/api-keys/{key}/rotate",
            '{"gracePeriodSeconds": 0, "gracePeriodSeconds": 600}',
        ),
        (
            "POST",
            "/v1/api-keys",
            '{"name": "second-key-01", "userId": "{user}", "allowedSourceIps": [], '
            '"description": "a", "description": "b"}',
        ),
    ],
)
def test_a_duplicate_key_is_a_400_and_writes_nothing(
    client: FlaskClient,
    owner: Bootstrapped,
    container: Container,
    method: str,
    path: str,
    body: str,
) -> None:
    version = container.store.version(owner.account_id)
    filled = path.format(user=owner.owner_id, key=owner.key_name)
    response = client.open(
        filled, method=method, headers=keys(owner), data=body.replace("{user}", owner.owner_id)
    )
    assert response.status_code == 400, response.get_json()
    assert "duplicate key" in str(response.get_json()["error"])
    assert container.store.version(owner.account_id) == version


def test_the_same_body_without_the_duplicate_is_accepted(
    client: FlaskClient, owner: Bootstrapped
) -> None:
    body = '{"name": "Eve", "email": "eve@x.io", "role": "Member"}'
    assert client.post("/v1/users", headers=keys(owner), data=body).status_code == 201


def test_flask_get_json_refuses_a_duplicate_key_too(container: Container) -> None:
    app = create_app({"container": container, "TESTING": True})
    with app.test_request_context("/", method="POST", data='{"a": {"b": 1, "b": 2}}', headers=JSON):
        from flask import request
        from werkzeug.exceptions import BadRequest

        with pytest.raises(BadRequest):
            request.get_json()


def test_the_secret_scanning_endpoint_refuses_a_duplicate_key(
    settings: Settings, redis_client: Any, tmp_path: Path, owner: Bootstrapped
) -> None:
    github = GitHubSigner()
    keys_file = github.write_keys_file(tmp_path / "github-keys.json")
    container = build(dataclasses.replace(settings, secret_scanning_keys=str(keys_file)))
    leaked, _ = container.ledger.create_secret_key(
        owner.account_id, "leaky-key-001", owner.owner_id, (), OPERATOR
    )
    body = (
        '[{"token": "klsk_0000000000000000000000000000000000000000000000000000000000000000",'
        f' "token": "{leaked}", "type": "keyledger_secret_key", "url": "https://x", '
        '"source": "content"}]'
    ).encode()
    client = create_app({"container": container, "TESTING": True}).test_client()

    response = client.post(
        "/v1/secret-scanning/github", data=body, headers={**github.headers(body), **JSON}
    )

    assert response.status_code == 400
    assert "duplicate key" in response.get_json()["error"]["description"]
    assert "leaky-key-001" in container.ledger.state(owner.account_id).keys
