"""Forward auth refuses paths routers disagree on, in the fast path and the Flask view alike.

Issue 7, finding 1: through nginx, a Logs Viewer's ``/v1/users/1%2F..%2F..%2Flogs``
was admitted and reached the service verbatim; a Viewer's ``/v1/EVENTS`` and
friends were admitted. Every request the review demonstrated is replayed here
in process (the same through the real nginx in tests/e2e/test_nginx_forward_auth.py),
once through the WSGI fast path that answers admitted checks before Flask, and
once through the Flask view alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask

from keyledger import create_app
from keyledger.domain.events import OPERATOR
from keyledger.web.forward import ForwardAuthFastPath
from tests.conftest import RunningProjector
from tests.integration.conftest import module_container
from tests.integration.helpers import Bootstrapped, bootstrap

IDENTITY = ("X-Account-Id", "X-Api-Key-Name", "X-User-Id", "X-User-Role")


@dataclass
class World:
    owner: Bootstrapped
    viewer: str
    logs_viewer: str
    app: Flask


@pytest.fixture(scope="module")
def world(redis_url: str) -> Iterator[World]:
    with module_container(redis_url) as container, RunningProjector(container):
        owner = bootstrap(container)
        secrets = []
        for role, name in (("Viewer", "viewer-key-01"), ("Logs Viewer", "logs-viewer-key-01")):
            user_id, _ = container.ledger.add_user(
                owner.account_id, role, f"{name}@example.com", role, OPERATOR
            )
            secret, _ = container.ledger.create_secret_key(
                owner.account_id, name, user_id, (), OPERATOR
            )
            secrets.append(secret)
        yield World(owner, secrets[0], secrets[1], create_app({"container": container}))


def fast_path_of(app: Any) -> ForwardAuthFastPath:
    """The fast path inside the middleware that wraps it (each keeps its inner app in .app)."""
    while not isinstance(app, ForwardAuthFastPath):
        app = app.app
    return app


def without_fast_path(app: Flask) -> Flask:
    """The same app with the WSGI fast path taken out: only the Flask view decides."""
    fast_path_of(app.wsgi_app)
    bare = create_app({"container": app.extensions["keyledger"]})
    inner = fast_path_of(bare.wsgi_app)
    outer = bare.wsgi_app
    if outer is inner:
        bare.wsgi_app = inner.app  # type: ignore[method-assign]
    else:
        while outer.app is not inner:  # type: ignore[attr-defined]
            outer = outer.app  # type: ignore[attr-defined]
        outer.app = inner.app  # type: ignore[attr-defined]
    return bare


def ask(app: Flask, w: World, secret: str, method: str, uri: str) -> tuple[int, dict[str, str]]:
    response = app.test_client().get(
        "/v1/auth/check",
        headers={"x-api-key": w.owner.account_key, "x-api-secret-key": secret},
        environ_overrides={"HTTP_X_ORIGINAL_METHOD": method, "HTTP_X_ORIGINAL_URI": uri},
    )
    return response.status_code, {n: response.headers[n] for n in IDENTITY if n in response.headers}


PATHS = ("fast path", "Flask view")


def deciders(w: World) -> dict[str, Flask]:
    return {"fast path": w.app, "Flask view": without_fast_path(w.app)}


#: (who, original URI) the review sent; each was admitted (200) before the fix.
DEMONSTRATED = [
    ("logs_viewer", "/v1/users/1%2F..%2F..%2Flogs"),
    ("logs_viewer", "/v1/admin/delete-all%2F..%2F..%2Flogs"),
    ("viewer", "/v1/events;jsessionid=x"),
    ("viewer", "/v1/%2565vents"),
    ("viewer", "/v1/events%2e"),
    ("viewer", "/v1/events%20"),
]


@pytest.mark.parametrize("decider", PATHS)
@pytest.mark.parametrize(("who", "uri"), DEMONSTRATED)
def test_each_demonstrated_path_trick_is_refused_with_400(
    world: World, decider: str, who: str, uri: str
) -> None:
    status, identity = ask(deciders(world)[decider], world, getattr(world, who), "GET", uri)
    assert (status, identity) == (400, {})


@pytest.mark.parametrize("decider", PATHS)
@pytest.mark.parametrize("uri", ["/v1/Events", "/v1/EVENTS", "/v1/events/", "/v1/%65vents"])
def test_a_viewers_event_history_exclusion_holds_for_every_spelling(
    world: World, decider: str, uri: str
) -> None:
    status, identity = ask(deciders(world)[decider], world, world.viewer, "GET", uri)
    assert (status, identity) == (403, {})


@pytest.mark.parametrize("decider", PATHS)
@pytest.mark.parametrize(
    "uri",
    [
        "/v1/users/1%2F..%2F..%2Flogs",
        "/v1/x/../orders",
        "/v1/orders;x=1",
        "/v1/orders%00",
        "/v1/orders\\x",
        "/v1/orders.",
        "/v1/%2e%2e/orders",
    ],
)
def test_even_an_owner_gets_400_never_200_for_an_ambiguous_path(
    world: World, decider: str, uri: str
) -> None:
    """An Owner may do everything, so only the path rule stands between these and a 200."""
    status, identity = ask(deciders(world)[decider], world, world.owner.secret_key, "GET", uri)
    assert (status, identity) == (400, {})


def test_the_400_names_the_header_and_the_problem(world: World) -> None:
    response = world.app.test_client().get(
        "/v1/auth/check",
        headers={
            "X-Original-Method": "GET",
            "X-Original-URI": "/v1/users/1%2F..%2F..%2Flogs",
        },
    )
    assert response.status_code == 400
    description = response.get_json()["error"]["description"]
    assert "X-Original-URI" in description and "'/' (%2F)" in description


@pytest.mark.parametrize("decider", PATHS)
@pytest.mark.parametrize(
    ("who", "uri", "status"),
    [
        ("logs_viewer", "/v1/logs", 200),
        ("logs_viewer", "/v1/LOGS", 200),
        ("logs_viewer", "/v1/logs/?limit=5", 200),
        ("logs_viewer", "/v1/logs/x", 403),
        ("logs_viewer", "/v1//logs", 403),
        ("logs_viewer", "/v1/logs.csv", 403),
        ("viewer", "/v1/users", 200),
        ("viewer", "/v1/events/x", 200),
    ],
)
def test_plain_paths_are_decided_by_the_role(
    world: World, decider: str, who: str, uri: str, status: int
) -> None:
    assert ask(deciders(world)[decider], world, getattr(world, who), "GET", uri)[0] == status
