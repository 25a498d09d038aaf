"""A change is acknowledged only once enough replicas hold it (``KEYLEDGER_MIN_REPLICAS``).

Redis replicates asynchronously: a primary answers a write, then sends it to its
replicas, and a primary that dies in between takes the write with it when a
replica is promoted. ``WAIT n timeout`` blocks until ``n`` replicas have
acknowledged every write *its own connection* made, and it means something only
on the primary that took them (redis-py's cluster client sends a bare ``WAIT`` to
an arbitrary node).

So the append runs on a connection ``Pinned`` to its partition's primary, held
until the change is confirmed on that same connection: an ``INCR`` of the
partition's replication mark, then ``WAIT``. Replication is one ordered stream per
primary, so a replica that reached the mark holds everything the primary did
before it: the append, and the projector's transaction that applied it (the
caller confirms after waiting for it), so a change answered 2xx is in the log
and in effect on the replica that a failover promotes. If that connection fails,
the node is no longer the slot's primary (MOVED, READONLY) or fewer replicas
confirm in time, the change is *unconfirmed*: it may or may not survive a
failover, and the caller must say so (503), never 2xx.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import redis

from keyledger.adapters.redis_client import REDIS_ERRORS
from keyledger.adapters.topology import Node

log = logging.getLogger("keyledger.replication")


@dataclass(frozen=True)
class Durability:
    """How many replicas must hold a change before it is acknowledged, and how long to
    wait for them (milliseconds)."""

    min_replicas: int = 0
    wait_ms: int = 1000

    @property
    def required(self) -> bool:
        return self.min_replicas > 0


class Pinned:
    """One connection to one primary, from an append until its confirmation.

    A client of its own over the node's connection pool (no new TCP connection),
    holding one of its connections. keyledger's connections never retry a command
    (redis-py's default for a plain client, and its cluster client's setting for
    node clients): a write that timed out may have been applied, and is reported
    so, never sent again.
    """

    def __init__(self, node: Node):
        self.node = node.name
        self.client = redis.Redis(
            connection_pool=node.client.connection_pool, single_connection_client=True
        )

    def confirm(self, mark: str, durability: Durability) -> int:
        """How many replicas hold everything this connection's primary wrote before now
        (0 when the connection or the node's role failed)."""
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.incr(mark)
                pipe.wait(durability.min_replicas, durability.wait_ms)
                _, replicas = pipe.execute()
            return int(replicas)
        except REDIS_ERRORS as exc:
            log.warning("change not confirmed on %s (%s: %s)", self.node, type(exc).__name__, exc)
            return 0

    def close(self) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            self.client.close()
