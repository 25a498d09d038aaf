"""Revocation with several web workers, every one holding the key in its caches.

Each worker has verified the key and cached its records; when the DELETE
returns, the next request fails in every one of them. Both ways the server may
start its workers: the Procfile's ``keyledger serve`` as the platform does it
(fork on Linux), and with spawn (fresh interpreters, what Granian uses where
Python defaults to forkserver).
"""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.client import ApiClient
from tests.e2e.harness import Stack, Tenant, WebServer, answered_by_every_worker, unique_key_name

pytestmark = pytest.mark.e2e

WORKERS = 4


@pytest.fixture(scope="module", params=["procfile", "spawn"])
def many(stack: Stack, request: pytest.FixtureRequest) -> WebServer:
    start_method = None if request.param == "procfile" else request.param
    return stack.start_web(f"web-many-{request.param}", workers=WORKERS, start_method=start_method)


def every_worker_answers(web: WebServer, client: ApiClient, expect: int) -> None:
    answered_by_every_worker(web, client, expect, WORKERS)


def test_a_deleted_key_fails_at_once_in_every_worker(tenant: Tenant, many: WebServer) -> None:
    name = unique_key_name("fourway")
    secret = tenant.owner.create_key(name, tenant.owner_user_id)["secretKey"]
    victim = many.client(tenant.account_key, secret)
    every_worker_answers(many, victim, 200)
    deleted = many.client(tenant.account_key, tenant.secret_key).delete(f"/v1/api-keys/{name}")
    assert deleted.status_code == 204
    assert victim.get("/v1/").status_code == 401
    every_worker_answers(many, victim, 401)


def test_a_role_change_takes_effect_at_once_in_every_worker(
    tenant: Tenant, many: WebServer
) -> None:
    owner = many.client(tenant.account_key, tenant.secret_key)
    user = owner.post(
        "/v1/users",
        json={
            "name": "Vic Four",
            "email": f"vic4-{uuid.uuid4().hex[:8]}@example.com",
            "role": "Viewer",
        },
    ).json()
    name = unique_key_name("viewer4")
    secret = owner.post("/v1/api-keys", json={"name": name, "userId": user["id"]}).json()[
        "secretKey"
    ]
    viewer = many.client(tenant.account_key, secret)
    every_worker_answers(many, viewer, 200)
    assert owner.put(f"/v1/users/{user['id']}", json={"role": "Member"}).status_code == 200
    assert viewer.get("/v1/").status_code == 403
    every_worker_answers(many, viewer, 403)
