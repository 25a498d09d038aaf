"""Fixtures shared by the integration tests (a real Redis; see tests/conftest.py)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from flask.testing import FlaskClient

from keyledger import create_app
from keyledger.authn.throttle import ThrottleLimits
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from tests.conftest import retire
from tests.integration.helpers import Bootstrapped, bootstrap


@pytest.fixture
def client(container: Container) -> Iterator[FlaskClient]:
    """The web app in process, on the test's container."""
    app = create_app({"container": container, "TESTING": True})
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture
def owner(container: Container, projector) -> Bootstrapped:  # type: ignore[no-untyped-def]
    """An account with its API enabled and one Owner key, with a projector running."""
    return bootstrap(container)


@contextmanager
def module_container(redis_url: str) -> Iterator[Container]:
    """A container on its own namespace, without limits, for a module's shared fixture;
    its keys are deleted afterwards."""
    namespace = f"t{uuid.uuid4().hex[:12]}"
    container = build(
        unlimited(
            Settings(redis_url=redis_url, namespace=namespace, partitions=4, apply_timeout=5.0)
        )
    )
    raw = redis.Redis.from_url(redis_url)
    try:
        yield container
    finally:
        retire(container)
        keys = list(raw.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            raw.delete(*keys)
        raw.close()


def unlimited(settings: Settings) -> Settings:
    """``settings`` without rate limit, change and revocation budgets, failure throttle or verification
    ceiling (tests that send many requests)."""
    return dataclasses.replace(
        settings,
        rate_limit_per_minute=0,
        changes_per_minute=0,
        revocations_per_minute=0,
        throttle=ThrottleLimits(
            failures_per_source=0,
            failures_per_source_and_key=0,
            failures_per_network=0,
            failed_verifications_per_second=0,
        ),
    )
