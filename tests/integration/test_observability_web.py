"""The operational endpoints in process: what is public, what is not, and the readiness
checks against a real Redis."""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest
import redis
from flask.testing import FlaskClient

from keyledger.bootstrap import Container, build
from keyledger.web.factory import create_app


def test_metrics_off_means_the_path_is_like_any_unknown_one(container: Container) -> None:
    settings = dataclasses.replace(container.settings, metrics=False)
    client = create_app({"container": build(settings)}).test_client()

    assert client.get("/metrics").status_code == 401
    assert client.get("/readyz").status_code in {200, 503}  # readiness stays


def test_only_get_and_head_reach_the_operational_endpoints(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 200
    assert client.head("/readyz").status_code in {200, 503}
    assert client.head("/readyz").data == b""
    for path in ("/metrics", "/readyz"):
        assert client.post(path).status_code == 401
        assert client.delete(path).status_code == 401


def test_every_response_carries_a_request_id(client: FlaskClient) -> None:
    for path in ("/metrics", "/readyz", "/healthz", "/v1/", "/nowhere"):
        assert client.get(path, headers={"X-Request-Id": "rid-7"}).headers["X-Request-Id"] == (
            "rid-7"
        )


def test_readiness_names_a_halted_partition(
    client: FlaskClient, container: Container, redis_client: redis.Redis
) -> None:
    ticks = itertools.count(step=10)  # every probe finds the kept lag a second too old
    client.application.wsgi_app.readiness.clock = lambda: float(next(ticks))  # type: ignore[attr-defined]
    container.auth_cache.wait_until_subscribed()
    assert client.get("/readyz").status_code == 200
    redis_client.hset(container.keyspace.halted(2), "entry", "1-0")

    response = client.get("/readyz")

    assert response.status_code == 503
    body = json.loads(response.data)
    assert body["failing"] == ["partitions"]
    assert body["checks"]["partitions"]["halted"] == [2]
    assert body["checks"]["redis"] == {"ok": True}


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text; version=x",
        "application/openmetrics-text; version=2.klsk_0123456789abcdefABCDEFGHIJKLMNOPQRSTUV",
        "application/openmetrics-text; version=1.0.0; escaping=" + "e" * 500,
        "text/plain; version=abc",
        ";;;,,,=",
    ],
)
def test_any_accept_header_gets_metrics_and_is_not_echoed(client: FlaskClient, accept: str) -> None:
    """An anonymous client's Accept used to raise in the exposition library (a 503 and a
    traceback in the log) or come back in the Content-Type."""
    response = client.get("/metrics", headers={"Accept": accept})
    assert response.status_code == 200
    assert "klsk" not in response.headers["Content-Type"]
    assert "x" not in response.headers["Content-Type"].replace("text", "")
    assert "eeee" not in response.headers["Content-Type"]


def test_an_openmetrics_client_still_gets_openmetrics(client: FlaskClient) -> None:
    response = client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).rstrip().endswith("# EOF")
