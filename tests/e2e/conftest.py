"""Fixtures of the end-to-end tests: one real stack (gunicorn + projector) per module.

Each module gets its own key namespace in the session's Redis. The namespaces
are deleted when the session ends rather than when their module ends, so that
the last module (``test_zz_no_secret_anywhere``) can scan everything the whole
journey wrote.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest
import redis

from tests.e2e.harness import MINTED, Stack, Tenant, WebServer, delete_namespace


@pytest.fixture(scope="session")
def e2e_redis(redis_url: str) -> Iterator[redis.Redis]:
    """A raw client of the test Redis; deletes every e2e namespace at the end."""
    client = redis.Redis.from_url(redis_url)
    yield client
    for namespace in MINTED.namespaces:
        delete_namespace(client, namespace)
    client.close()


@pytest.fixture(scope="module")
def stack(
    redis_url: str,
    e2e_redis: redis.Redis,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Stack]:
    """A projector and a two-worker gunicorn for this module, on a fresh namespace."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    running = Stack(redis_url, tmp_path_factory.mktemp(module))
    try:
        running.start()
        yield running
    finally:
        running.stop_all()


@pytest.fixture(scope="module")
def web(stack: Stack) -> WebServer:
    assert stack.web is not None
    return stack.web


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> Tenant:
    """An account bootstrapped with the CLI, shared by the tests of a module."""
    return stack.bootstrap()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item, so that a fixture can tell that its test
    failed (the browser tests then save screenshots of every view)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
