"""Where each hash slot lives: the one Redis, or the primaries of a Redis Cluster.

Most Redis calls touch one key, or keys of one partition, and go through
``Topology.client``: a ``redis.Redis``, or redis-py's ``RedisCluster``, which
routes each command by its key's slot. What the cluster client cannot do goes to
the plain client of the primary holding the slot (``primary``): scripts and MGET
inside pipelines, MULTI/EXEC under WATCH, PUBLISH inside a transaction, TIME, and
``WAIT`` on the connection that wrote. Every key of a partition shares one slot,
so one partition's work is one node's work. On a single Redis the primary of
every slot is that Redis.

After a failover or a slot migration a node's client gets MOVED, or cannot
connect: ``on_primary`` re-reads the slot map (``refresh``) and retries what was
refused (MOVED, ASK, TRYAGAIN, CLUSTERDOWN: the command did not run), and on a
connection failure refreshes and re-raises (the command may have run).
``layout`` names which node serves which slots, so that per-process caches can
be flushed when it changes (``adapters.authcache``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis
from redis._parsers.encoders import Encoder
from redis.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ReadOnlyError,
    RedisClusterException,
    TryAgainError,
)

log = logging.getLogger("keyledger.topology")

T = TypeVar("T")
Item = TypeVar("Item")
#: What adapters talk to: one Redis, or a Redis Cluster routing by key.
Client = redis.Redis | RedisCluster
#: Slot ranges and their primaries: (first slot, last slot, node id, ``host:port``).
Layout = tuple[tuple[int, int, str, str], ...]
#: The node refused the command because another node serves the slot now, or the
#: cluster is reconfiguring (MovedError is an AskError): nothing was executed.
REFUSALS = (AskError, TryAgainError, ClusterDownError, ReadOnlyError)


@dataclass(frozen=True)
class Node:
    """A Redis server: ``host:port``, its role and a plain client of it."""

    name: str
    client: redis.Redis
    role: str = "primary"


class LazyCluster:
    """A ``RedisCluster`` made on first use.

    redis-py's cluster client reads the slot map when it is made; a process that
    starts while the cluster is unreachable must still start (and answer 503 until
    it is back), as it does with a single Redis. Until then every call raises
    ``redis.ConnectionError``.
    """

    def __init__(self, factory: Callable[[], RedisCluster], decode_responses: bool):
        self._factory = factory
        self._cluster: RedisCluster | None = None
        self._lock = threading.Lock()
        self._encoder = Encoder("utf-8", "strict", decode_responses)  # type: ignore[no-untyped-call]

    def real(self) -> RedisCluster:
        cluster = self._cluster
        if cluster is None:
            with self._lock:
                if self._cluster is None:
                    try:
                        self._cluster = self._factory()
                    except RedisClusterException as exc:
                        raise redis.ConnectionError(f"cannot reach the cluster: {exc}") from exc
                cluster = self._cluster
        return cluster

    def get_encoder(self) -> Any:
        """Scripts are registered at start-up: hashing them needs no connection."""
        return self._encoder

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)


class Topology:
    def __init__(self, client: Client):
        self.client = client
        self._lazy: LazyCluster | None = (
            cast(LazyCluster, client) if isinstance(client, LazyCluster) else None
        )
        if self._lazy is None:
            kwargs = cast(redis.Redis, client).connection_pool.connection_kwargs
            name = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
            self._single: Node | None = Node(name, cast(redis.Redis, client))
        else:
            self._single = None

    @property
    def clustered(self) -> bool:
        return self._lazy is not None

    def _cluster(self) -> RedisCluster:
        assert self._lazy is not None
        return self._lazy.real()

    # -- routing ---------------------------------------------------------------------------
    def primary(self, key: str) -> Node:
        """The primary serving ``key``'s slot, as the slot map last read says."""
        if self._single is not None:
            return self._single
        cluster = self._cluster()
        try:
            found = cast(Any, cluster).get_node_from_key(key)
        except RedisClusterException as exc:
            raise redis.ConnectionError(f"no node serves {key!r} now: {exc}") from exc
        return Node(found.name, cluster.get_redis_connection(found))

    def node(self, name: str) -> Node | None:
        """The node called ``name`` (``host:port``), if the slot map still knows it."""
        if self._single is not None:
            return self._single if name == self._single.name else None
        cluster = self._cluster()
        found = cast(Any, cluster).get_node(node_name=name)
        if found is None:
            return None
        return Node(found.name, cluster.get_redis_connection(found), found.server_type)

    def by_primary(self, keys: Mapping[Item, str]) -> list[tuple[Node, list[Item]]]:
        """Items grouped by the primary holding their key (one group on a single Redis),
        so that each group can share one pipeline of plain commands."""
        groups: dict[str, tuple[Node, list[Item]]] = {}
        for item, key in keys.items():
            node = self.primary(key)
            groups.setdefault(node.name, (node, []))[1].append(item)
        return list(groups.values())

    def on_primary(self, key: str, call: Callable[[Node], T], attempts: int = 4) -> T:
        """``call`` with the primary of ``key``'s slot: retried on a fresh slot map when
        the node refused it, re-raised (after reading the slot map again) when the
        connection failed."""
        return self.routed(lambda: call(self.primary(key)), attempts)

    def routed(self, call: Callable[[], T], attempts: int = 4) -> T:
        """``call`` (which picks node clients from the slot map) again on a fresh slot map
        when a node refused it; re-raised, after reading the slot map again, when a
        connection failed (the command may have run)."""
        for attempt in range(attempts):
            try:
                return call()
            except REFUSALS:
                if attempt == attempts - 1:
                    raise
                self.refresh()
                time.sleep(0.05 * attempt)
            except (redis.ConnectionError, redis.TimeoutError):
                self.refresh_quietly()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def refresh(self) -> None:
        """Read the slot map again (a cluster; nothing to do on a single Redis)."""
        if self._lazy is None:
            return
        try:
            self._cluster().nodes_manager.initialize()
        except RedisClusterException as exc:
            raise redis.ConnectionError(f"cannot read the slot map: {exc}") from exc

    def refresh_quietly(self) -> None:
        try:
            self.refresh()
        except (redis.RedisError, OSError) as exc:
            log.warning("cannot read the cluster's slot map now (%s)", type(exc).__name__)

    # -- the nodes -------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        """Every node (primaries first), as the slot map last read says."""
        if self._single is not None:
            return [self._single]
        cluster = self._cluster()
        found = [
            Node(n.name, cluster.get_redis_connection(n), n.server_type)
            for n in cast(Any, cluster).get_nodes()
        ]
        return sorted(found, key=lambda n: (n.role != "primary", n.name))

    def layout(self) -> Layout:
        """Which node serves which slots (start, end, node id, ``host:port``), as a node
        of the cluster says now (asking the nodes in turn until one answers); empty on
        a single Redis. Any change to it (a failover, a slot moved) means writes may
        have been lost or moved."""
        if self._single is not None:
            return ()
        nodes = self.nodes()
        random.shuffle(nodes)  # not always the same node: spread the questions
        failure: Exception | None = None
        for node in nodes:
            try:
                reply = cast(Any, node.client).execute_command("CLUSTER SLOTS")
            except (redis.RedisError, OSError) as exc:
                failure = exc
                continue
            return _layout(reply)
        raise redis.ConnectionError(f"no node answers CLUSTER SLOTS ({failure!r})")

    def subscriber(self) -> Any:
        """A pub/sub connection to one node. Every node of a cluster hears every
        ``PUBLISH`` (over the cluster bus, a little after the publisher's own node);
        a random one spreads the subscribers of many processes."""
        if self._single is not None:
            return self._single.client.pubsub()  # type: ignore[no-untyped-call]
        node = random.choice(self.nodes())  # noqa: S311 - spreading load, not a secret
        return node.client.pubsub()  # type: ignore[no-untyped-call]

    def subscribers(self, layout: Layout) -> list[Any]:
        """A pub/sub connection to every primary of ``layout`` (as ``layout()`` read it):
        a message published on a primary is in its own subscribers' sockets before the
        publisher's command returns."""
        if self._single is not None:
            return [self._single.client.pubsub()]  # type: ignore[no-untyped-call]
        addresses = sorted({address for _, _, _, address in layout})
        if not addresses:
            raise redis.ConnectionError("the slot map names no primary")
        if any(self.node(address) is None for address in addresses):
            self.refresh()  # a primary this process has not met yet
        pubsubs = []
        for address in addresses:
            node = self.node(address)
            if node is None:
                raise redis.ConnectionError(f"{address} serves slots but is not known yet")
            pubsubs.append(node.client.pubsub())  # type: ignore[no-untyped-call]
        return pubsubs


def _layout(reply: Any) -> Layout:
    ranges = []
    for entry in reply:
        start, end, primary = int(entry[0]), int(entry[1]), entry[2]
        address = f"{_text(primary[0])}:{int(primary[1])}"
        node_id = _text(primary[2]) if len(primary) > 2 else address
        ranges.append((start, end, node_id, address))
    return tuple(sorted(ranges))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
