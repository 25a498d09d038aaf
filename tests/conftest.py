"""Shared fixtures.

Unit tests need nothing. Integration and end-to-end tests use a real Redis:
``REDIS_URL`` when set, otherwise a throwaway embedded ``redis-server`` started
once for the session on a free port. Every test gets its own key namespace, so
tests never see each other's data and never touch anything else in that Redis.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from keyledger.adapters.embedded import EmbeddedRedis
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from keyledger.workers.projector import Projector


@pytest.fixture(scope="session", autouse=True)
def quiet_exit() -> Iterator[None]:
    """After the session, a record logged at the interpreter's exit (a container's last
    uses meeting a Redis the tests have stopped) is dropped rather than reported as a
    logging error with its traceback: pytest has closed the streams the handlers held."""
    yield
    logging.raiseExceptions = False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persistent=False)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(redis_url: str, namespace: str) -> Settings:
    return Settings(redis_url=redis_url, namespace=namespace, partitions=4, apply_timeout=5.0)


@pytest.fixture
def redis_client(redis_url: str, namespace: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def container(settings: Settings, redis_client: redis.Redis) -> Iterator[Container]:
    built = build(settings)
    yield built
    retire(built)


def retire(container: Container) -> None:
    """Write the container's last uses while its Redis still runs: at the interpreter's
    exit (``LastUseRecorder.flush_at_exit``) the session's Redis is gone, and each
    container left with notes logged a connection error after pytest's streams closed."""
    container.last_use.stop()
    container.last_use.flush_quietly()


class RunningProjector:
    def __init__(self, container: Container):
        self.client = redis.Redis.from_url(
            container.settings.redis_url, decode_responses=True, socket_timeout=10
        )
        self.projector = Projector(self.client, container.keyspace, consumer="test", block_ms=100)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.projector.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Projector:
        self.thread.start()
        return self.projector

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


@pytest.fixture
def projector(container: Container) -> Iterator[Projector]:
    """A projector running in a thread for the duration of the test."""
    with RunningProjector(container) as running:
        yield running


ROOT = Path(__file__).resolve().parent.parent
