"""Any direct client could forge its source address; now only a trusted proxy can name one.

Issue 7, finding 2: with ``KEYLEDGER_TRUSTED_PROXIES=1`` (as docs/integrators.md advises for
forward auth) a key limited to ``10.2.5.0/24`` answered 403 without the header
and 200 with ``X-Forwarded-For: 10.2.5.7`` (also ``::ffff:a02:507``), on ``/v1/``
and ``/v1/auth/check``, from any peer; rotating the header also defeated the
failure throttle. Here the WSGI environ carries the peer address a server
would put there (the same over real sockets: tests/e2e/test_nginx_forward_auth.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient

from keyledger import create_app
from keyledger.authn.throttle import ThrottleLimits
from keyledger.bootstrap import Container, build
from keyledger.domain.events import OPERATOR
from tests.conftest import RunningProjector
from tests.e2e.harness import forge, key_id_of
from tests.integration.conftest import module_container
from tests.integration.helpers import Bootstrapped, bootstrap

UNTRUSTED_PEERS = ["192.0.2.10", "127.0.0.2", "::ffff:192.0.2.10", "2001:db8::10"]
TRUSTED_PEERS = ["127.0.0.1", "::1", "::ffff:127.0.0.1"]
CLAIMS = ["10.2.5.7", "::ffff:a02:507", "192.0.2.1, 10.2.5.7"]
PATHS = ["/v1/", "/v1/auth/check"]
FORWARD = {"HTTP_X_ORIGINAL_METHOD": "GET", "HTTP_X_ORIGINAL_URI": "/orders"}


@dataclass
class World:
    container: Container
    owner: Bootstrapped
    restricted: str  # a secret key allowed from 10.2.5.0/24 only
    client: FlaskClient  # KEYLEDGER_TRUSTED_PROXIES=1, default trusted addresses


@pytest.fixture(scope="module")
def world(redis_url: str) -> Iterator[World]:
    with module_container(redis_url) as container, RunningProjector(container):
        owner = bootstrap(container)
        restricted, _ = container.ledger.create_secret_key(
            owner.account_id, "office-only-key", owner.owner_id, ("10.2.5.0/24",), OPERATOR
        )
        proxied = dataclasses.replace(container.settings, trusted_proxies=1)
        client = create_app({"container": build(proxied)}).test_client()
        yield World(container, owner, restricted, client)


def get(
    client: FlaskClient, path: str, peer: str, forwarded_for: str | None, keys: dict[str, str]
) -> int:
    environ = {"REMOTE_ADDR": peer, **(FORWARD if path == "/v1/auth/check" else {})}
    if forwarded_for is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return client.get(path, headers=keys, environ_overrides=environ).status_code


def restricted_keys(w: World) -> dict[str, str]:
    return {"x-api-key": w.owner.account_key, "x-api-secret-key": w.restricted}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("peer", UNTRUSTED_PEERS)
@pytest.mark.parametrize("claim", [None, *CLAIMS])
def test_an_untrusted_peer_cannot_claim_an_address_in_the_keys_subnet(
    world: World, path: str, peer: str, claim: str | None
) -> None:
    assert get(world.client, path, peer, claim, restricted_keys(world)) == 403


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("peer", TRUSTED_PEERS)
@pytest.mark.parametrize("claim", CLAIMS)
def test_a_trusted_proxy_names_the_client(world: World, path: str, peer: str, claim: str) -> None:
    assert get(world.client, path, peer, claim, restricted_keys(world)) == 200


@pytest.mark.parametrize("path", PATHS)
def test_a_peer_inside_the_subnet_is_allowed_on_its_own_address(world: World, path: str) -> None:
    assert get(world.client, path, "10.2.5.7", "192.0.2.1", restricted_keys(world)) == 200
    assert get(world.client, path, "::ffff:10.2.5.7", None, restricted_keys(world)) == 200


def test_the_source_an_untrusted_peer_is_shown_is_its_own(world: World) -> None:
    owner = {"x-api-key": world.owner.account_key, "x-api-secret-key": world.owner.secret_key}
    response = world.client.get(
        "/v1/",
        headers=owner,
        environ_overrides={"REMOTE_ADDR": "192.0.2.10", "HTTP_X_FORWARDED_FOR": "10.2.5.7"},
    )
    assert response.get_json()["account"]["key"]["httpSourceIp"] == "192.0.2.10"


def test_a_proxy_outside_the_configured_addresses_is_not_believed(world: World) -> None:
    settings = dataclasses.replace(
        world.container.settings, trusted_proxies=1, trusted_proxy_addresses=("192.0.2.0/24",)
    )
    client = create_app({"container": build(settings)}).test_client()
    keys = restricted_keys(world)
    assert get(client, "/v1/", "192.0.2.10", "10.2.5.7", keys) == 200
    assert get(client, "/v1/", "127.0.0.1", "10.2.5.7", keys) == 403


def throttled_client(world: World) -> FlaskClient:
    settings = dataclasses.replace(
        world.container.settings,
        trusted_proxies=1,
        throttle=ThrottleLimits(
            failures_per_source=3,
            failures_per_source_and_key=100,
            failed_verifications_per_second=0,  # the counts per source alone
        ),
    )
    return create_app({"container": build(settings)}).test_client()


def wrong_secret(world: World) -> dict[str, str]:
    """The owner's key id with another secret: a well-formed key that costs an argon2."""
    forged = forge("klsk", key_id_of(world.owner.secret_key))
    return {"x-api-key": world.owner.account_key, "x-api-secret-key": forged}


def test_rotating_x_forwarded_for_does_not_dodge_the_failure_throttle(world: World) -> None:
    client = throttled_client(world)
    statuses = [
        get(client, "/v1/", "192.0.2.99", f"198.51.{n}.7", wrong_secret(world)) for n in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]


def test_through_a_trusted_proxy_each_forwarded_client_counts_on_its_own(world: World) -> None:
    client = throttled_client(world)
    statuses = [
        get(client, "/v1/", "127.0.0.1", f"203.0.{n}.7", wrong_secret(world)) for n in range(5)
    ]
    assert statuses == [401] * 5
