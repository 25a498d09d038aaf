"""The forward-auth fast path answers admitted checks itself, exactly as the Flask view would.

Issue 7, finding 7: the fast path ignoring the rate-limit verdict, or dropping
``X-Rate-Limit-Remaining``, was caught only by the nginx end-to-end test. Here each
answer of the fast path is compared, header by header, with the Flask view's for the
same request, and the fast path is shown to answer without reaching Flask at all.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from flask import Flask

from keyledger import create_app
from keyledger.bootstrap import build
from keyledger.config import Settings
from keyledger.domain.errors import StoreUnavailable
from keyledger.web.forward import original_request
from tests.integration.helpers import Bootstrapped
from tests.integration.test_forward_paths import fast_path_of, without_fast_path

ORIGINAL = {"HTTP_X_ORIGINAL_METHOD": "GET", "HTTP_X_ORIGINAL_URI": "/v1/users"}
STABLE = ("X-Account-Id", "X-Api-Key-Name", "X-User-Id", "X-User-Role", "Cache-Control")


def keys(b: Bootstrapped) -> dict[str, str]:
    return {"x-api-key": b.account_key, "x-api-secret-key": b.secret_key}


def counting_flask(app: Flask) -> list[str]:
    """The paths of the requests that reached Flask (the fast path answers before it)."""
    seen: list[str] = []

    @app.before_request
    def _count() -> None:
        from flask import request

        seen.append(request.path)

    return seen


def app_for(settings: Settings, per_minute: int) -> Flask:
    return create_app(
        {"container": build(dataclasses.replace(settings, rate_limit_per_minute=per_minute))}
    )


def test_an_admitted_check_is_answered_before_flask(
    settings: Settings, owner: Bootstrapped
) -> None:
    app = app_for(settings, 0)
    reached = counting_flask(app)
    response = app.test_client().get(
        "/v1/auth/check", headers=keys(owner), environ_overrides=ORIGINAL
    )
    assert response.status_code == 200
    assert reached == []


def test_a_refused_check_goes_to_the_flask_view(settings: Settings, owner: Bootstrapped) -> None:
    app = app_for(settings, 0)
    reached = counting_flask(app)
    client = app.test_client()
    wrong = {"x-api-key": owner.account_key, "x-api-secret-key": "klsk_" + "A" * 40}
    assert client.get("/v1/auth/check", headers=wrong, environ_overrides=ORIGINAL).status_code in (
        400,
        401,
    )
    no_uri = {"HTTP_X_ORIGINAL_METHOD": "GET"}
    assert (
        client.get("/v1/auth/check", headers=keys(owner), environ_overrides=no_uri).status_code
        == 400
    )
    assert reached == ["/v1/auth/check", "/v1/auth/check"]


def test_other_paths_and_methods_are_left_to_flask(settings: Settings, owner: Bootstrapped) -> None:
    app = app_for(settings, 0)
    reached = counting_flask(app)
    client = app.test_client()
    assert (
        client.post("/v1/auth/check", headers=keys(owner), environ_overrides=ORIGINAL).status_code
        == 405
    )
    assert client.get("/v1/", headers=keys(owner)).status_code == 200
    assert reached == ["/v1/auth/check", "/v1/"]


@pytest.mark.parametrize("path", ["/v1/", "/v1/users", "/v1/auth/check/"])
def test_other_paths_carrying_the_proxy_headers_are_left_to_flask(
    settings: Settings, owner: Bootstrapped, path: str
) -> None:
    app = app_for(settings, 0)
    reached = counting_flask(app)
    response = app.test_client().get(path, headers=keys(owner), environ_overrides=ORIGINAL)
    assert reached == [path]
    assert "X-User-Role" not in response.headers


def test_head_is_answered_by_the_fast_path_too(settings: Settings, owner: Bootstrapped) -> None:
    app = app_for(settings, 0)
    reached = counting_flask(app)
    response = app.test_client().head(
        "/v1/auth/check", headers=keys(owner), environ_overrides=ORIGINAL
    )
    assert response.status_code == 200 and response.headers["X-User-Role"] == "Owner"
    assert reached == []


@pytest.mark.parametrize("decider", ["fast path", "Flask view"])
def test_the_answer_carries_identity_request_id_and_no_store(
    settings: Settings, owner: Bootstrapped, decider: str
) -> None:
    app = app_for(settings, 0)
    app = app if decider == "fast path" else without_fast_path(app)
    response = app.test_client().get(
        "/v1/auth/check",
        headers={**keys(owner), "X-Request-Id": "req-fast-path-1"},
        environ_overrides=ORIGINAL,
    )
    assert response.status_code == 200
    assert response.headers["X-User-Role"] == "Owner"
    assert response.headers["X-Account-Id"] == owner.account_id
    assert response.headers["X-Request-Id"] == "req-fast-path-1"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data == b""


def test_the_fast_path_and_the_flask_view_give_the_same_headers(
    settings: Settings, owner: Bootstrapped
) -> None:
    app = app_for(settings, 1000)
    answers = []
    for decider in (app, without_fast_path(app)):
        response = decider.test_client().get(
            "/v1/auth/check", headers=keys(owner), environ_overrides=ORIGINAL
        )
        assert response.status_code == 200
        answers.append({name: response.headers.get(name) for name in STABLE})
        assert int(response.headers["X-Rate-Limit-Remaining"]) >= 0
    assert answers[0] == answers[1]


@pytest.mark.parametrize("decider", ["fast path", "Flask view"])
def test_the_rate_limit_holds_on_forward_auth_with_the_remaining_header(
    settings: Settings, owner: Bootstrapped, decider: str
) -> None:
    app = app_for(settings, 3)
    app = app if decider == "fast path" else without_fast_path(app)
    client = app.test_client()
    responses = [
        client.get("/v1/auth/check", headers=keys(owner), environ_overrides=ORIGINAL)
        for _ in range(5)
    ]
    statuses = [r.status_code for r in responses]
    admitted = [r for r in responses if r.status_code == 200]
    assert statuses.count(200) <= 3 and statuses[-1] == 429, statuses
    assert admitted, statuses
    remaining = [int(r.headers["X-Rate-Limit-Remaining"]) for r in admitted]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] >= 0
    assert all(r.headers.get("X-User-Role") is None for r in responses if r.status_code == 429)
    assert 1 <= int(responses[-1].headers["Retry-After"]) <= 60


def test_without_a_request_id_the_fast_path_makes_one(
    settings: Settings, owner: Bootstrapped
) -> None:
    response = (
        app_for(settings, 0)
        .test_client()
        .get("/v1/auth/check", headers=keys(owner), environ_overrides=ORIGINAL)
    )
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])


def test_redis_down_in_the_fast_path_is_a_503_decided_once(
    settings: Settings, owner: Bootstrapped
) -> None:
    app = app_for(settings, 0)
    fast_path = fast_path_of(app.wsgi_app)
    calls: list[str] = []

    def unavailable(*args: object) -> None:
        calls.append("evaluate")
        raise StoreUnavailable("redis is down")

    fast_path.gate.evaluate = unavailable  # type: ignore[method-assign]
    response = app.test_client().get(
        "/v1/auth/check", headers=keys(owner), environ_overrides=ORIGINAL
    )
    assert response.status_code == 503
    assert calls == ["evaluate"]


@pytest.mark.parametrize(
    ("method", "uri", "refused"),
    [
        ("GET", "/" + "a" * (8192 - 1), False),  # the limit: 8192 characters
        ("GET", "/" + "a" * 8192, True),
        ("get", "/v1/users", True),
        ("GET;", "/v1/users", True),
        (None, "/v1/users", True),
        ("GET", None, True),
    ],
)
def test_the_original_request_headers_are_checked_before_any_decision(
    method: str | None, uri: str | None, refused: bool
) -> None:
    given = {"X-Original-Method": method, "X-Original-URI": uri}
    parsed = original_request(given.get, ("X-Original-Method", "X-Original-URI"))
    assert isinstance(parsed, str) is refused


def test_the_openapi_document_names_the_original_request_headers(
    settings: Settings, owner: Bootstrapped
) -> None:
    doc = app_for(settings, 0).test_client().get("/v1/openapi.json").get_json()
    names = {p["name"] for p in doc["paths"]["/v1/auth/check"]["get"]["parameters"]}
    assert {"X-Original-Method", "X-Original-URI"} <= names
