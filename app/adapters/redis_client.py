"""Redis connections and the translation of Redis failures into domain errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar, cast

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from keyledger.adapters.topology import Client, LazyCluster
from keyledger.domain.errors import StoreUnavailable

P = ParamSpec("P")
T = TypeVar("T")
#: Everything redis-py raises when Redis cannot serve a call. Its cluster client also
#: raises ``RedisClusterException`` (no node serves a slot, the map cannot be read),
#: which is not a ``RedisError``.
REDIS_ERRORS = (RedisError, RedisClusterException)
#: A cluster client's attempts at a command whose node failed (redis-py 8 makes 10):
#: enough to follow a failover's redirections, few enough to fail fast while none
#: serves the slot (the caller answers 503).
CLUSTER_RETRIES = 3


def connect(
    url: str, *, timeout: float, socket_timeout: float | None = None, cluster: bool = False
) -> Client:
    """A client with explicit timeouts: a dead Redis fails a call, never hangs it.

    With ``cluster``, ``url`` names any node of a Redis Cluster: a ``RedisCluster``
    (made on first use: a process may start while the cluster is away).
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout if socket_timeout is None else socket_timeout,
        "health_check_interval": 30,
    }
    if not cluster:
        return redis.Redis.from_url(url, **options)

    def make() -> RedisCluster:
        return RedisCluster.from_url(
            url,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), CLUSTER_RETRIES),
            **options,
        )

    return cast(RedisCluster, LazyCluster(make, decode_responses=True))


@contextmanager
def translated_errors() -> Iterator[None]:
    try:
        yield
    except REDIS_ERRORS as exc:
        raise StoreUnavailable(f"storage unavailable: {type(exc).__name__}") from exc


def store_call(func: Callable[P, T]) -> Callable[P, T]:
    """Decorator form of ``translated_errors`` for adapter methods."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with translated_errors():
            return func(*args, **kwargs)

    return wrapper


def stream_id(value: str) -> tuple[int, int]:
    """Order-preserving form of a stream entry id (``"1700000000000-3"``)."""
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


def is_busygroup(exc: Any) -> bool:
    return isinstance(exc, redis.ResponseError) and "BUSYGROUP" in str(exc)


Entries = list[tuple[str, dict[str, str]]]


def as_entries(reply: Any) -> Entries:
    """Typed view of an ``XRANGE``/``XREVRANGE`` reply; a deleted entry has no fields."""
    return [(str(entry_id), dict(fields or {})) for entry_id, fields in reply or []]


def as_streams(reply: Any) -> list[tuple[str, Entries]]:
    """Typed view of an ``XREAD``/``XREADGROUP`` reply (RESP2 list form)."""
    return [(str(stream), as_entries(entries)) for stream, entries in reply or []]
