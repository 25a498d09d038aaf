"""Revocations have their own rate-limit budget (second outside review, finding 1).

The rate limit is per account key, shared by every user's key of the account (the
model's 400 requests per minute). A Logs Viewer's loop used it all up, and then the
Owner's ``DELETE`` of the very key doing it got 429. keyledger's own revocation
requests (deleting a key or a user, a ``PUT`` of exactly ``{"enabled": false}``) now
count on a second budget of the same size that nothing else spends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import redis
from flask.testing import FlaskClient

from keyledger import create_app
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from keyledger.domain.events import OPERATOR
from tests.conftest import RunningProjector
from tests.integration.helpers import Bootstrapped, bootstrap

LIMIT = 4


@pytest.fixture
def limited(settings: Settings, redis_client: redis.Redis) -> Iterator[Container]:
    container = build(
        dataclasses.replace(
            settings,
            rate_limit_per_minute=LIMIT,
            changes_per_minute=0,
            revocations_per_minute=0,
        )
    )
    with RunningProjector(container):
        yield container


@pytest.fixture
def client(limited: Container) -> FlaskClient:
    return create_app({"container": limited, "TESTING": True}).test_client()


@pytest.fixture
def acme(limited: Container) -> Bootstrapped:
    return bootstrap(limited)


def keys(account_key: str, secret_key: str) -> dict[str, str]:
    return {"x-api-key": account_key, "x-api-secret-key": secret_key}


def holder(limited: Container, b: Bootstrapped, role: str, key_name: str) -> str:
    return holder_of(limited, b, role, key_name)[1]


def holder_of(limited: Container, b: Bootstrapped, role: str, key_name: str) -> tuple[str, str]:
    """A new user of ``role`` with a key named ``key_name``: (user id, secret key)."""
    user_id, _ = limited.ledger.add_user(
        b.account_id, f"A {role}", f"{key_name}@example.com", role, OPERATOR
    )
    secret, _ = limited.ledger.create_secret_key(b.account_id, key_name, user_id, (), OPERATOR)
    return user_id, secret


def spend(client: FlaskClient, account_key: str, secret: str) -> None:
    """A Logs Viewer's loop: the account key's whole budget, then a 429."""
    for _ in range(LIMIT):
        assert client.get("/v1/logs?limit=1", headers=keys(account_key, secret)).status_code == 200
    assert client.get("/v1/logs?limit=1", headers=keys(account_key, secret)).status_code == 429


def test_an_owner_revokes_the_key_that_spent_the_account_keys_budget(
    client: FlaskClient, limited: Container, acme: Bootstrapped
) -> None:
    looping = holder(limited, acme, "Logs Viewer", "looping-key-01")
    spend(client, acme.account_key, looping)
    owner = keys(acme.account_key, acme.secret_key)

    assert client.get("/v1/", headers=owner).status_code == 429  # the shared budget is spent
    assert client.delete("/v1/api-keys/looping-key-01", headers=owner).status_code == 204
    assert (
        client.get("/v1/logs?limit=1", headers=keys(acme.account_key, looping)).status_code == 401
    )


def test_disabling_a_key_and_removing_a_user_are_revocations_too(
    client: FlaskClient, limited: Container, acme: Bootstrapped
) -> None:
    looping = holder(limited, acme, "Logs Viewer", "looping-key-01")
    viewer_id, _ = holder_of(limited, acme, "Viewer", "viewing-key-01")
    spend(client, acme.account_key, looping)
    owner = keys(acme.account_key, acme.secret_key)

    disabled = client.put("/v1/api-keys/looping-key-01", headers=owner, json={"enabled": False})
    assert disabled.status_code == 200
    assert client.delete(f"/v1/users/{viewer_id}", headers=owner).status_code == 204
    assert client.get("/v1/", headers=owner).status_code == 429  # still spent for the rest


def test_other_changes_and_reads_stay_on_the_spent_budget(
    client: FlaskClient, limited: Container, acme: Bootstrapped
) -> None:
    looping = holder(limited, acme, "Logs Viewer", "looping-key-01")
    spend(client, acme.account_key, looping)
    owner = keys(acme.account_key, acme.secret_key)

    described = client.put(
        "/v1/api-keys/looping-key-01",
        headers=owner,
        json={"enabled": False, "description": "stop"},
    )
    assert described.status_code == 429  # not exactly a revocation: an ordinary request
    assert described.headers["Retry-After"]
    assert client.get("/v1/api-keys", headers=owner).status_code == 429


def test_revocations_have_a_limit_of_their_own(
    client: FlaskClient, limited: Container, acme: Bootstrapped
) -> None:
    owner = keys(acme.account_key, acme.secret_key)
    for n in range(LIMIT + 1):
        limited.ledger.create_secret_key(
            acme.account_id, f"spare-key-{n:04d}", acme.owner_id, (), OPERATOR
        )
    answers = [
        client.delete(f"/v1/api-keys/spare-key-{n:04d}", headers=owner).status_code
        for n in range(LIMIT + 1)
    ]
    assert answers == [204] * LIMIT + [429]
    assert client.get("/v1/", headers=owner).status_code == 200  # the other budget is untouched


def test_a_key_spending_its_own_revocations_cannot_stop_another_owner_revoking_it(
    client: FlaskClient, limited: Container, acme: Bootstrapped
) -> None:
    """A stolen Owner key deleting keys that do not exist (404s) spent the account key's
    revocation window, and the real Owner's DELETE of it got 429 (third review): the
    window is counted per secret key."""
    stolen = holder(limited, acme, "Owner", "stolen-key-001")
    thief = keys(acme.account_key, stolen)
    answers = [
        client.delete(f"/v1/api-keys/no-such-key-{n:04d}", headers=thief).status_code
        for n in range(LIMIT + 1)
    ]
    assert answers == [404] * LIMIT + [429]

    owner = keys(acme.account_key, acme.secret_key)
    assert client.delete("/v1/api-keys/stolen-key-001", headers=owner).status_code == 204
    assert client.get("/v1/", headers=thief).status_code == 401
