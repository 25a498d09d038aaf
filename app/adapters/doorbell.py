"""Wakes a reader of the log when a change is appended, where one blocking read cannot.

On a single Redis the projector and ``events tail`` block on one ``XREADGROUP`` /
``XREAD`` over every partition's stream. A Redis Cluster refuses a read over
streams in different slots, and one blocking read per partition would take a
connection each. But the append script already announces every change on the
invalidation channel (the account ids, ``adapters.authcache``): this subscription
is the doorbell. ``wait`` blocks on it and says which partitions were named; the
reader then reads those partitions without blocking.

Pub/sub can lose messages (a connection dropped and made again, a node that died
before passing a message on), so ``wait`` answers None, "read everything", when it
has just subscribed or lost its subscription, and readers also look at every
partition when it times out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any

from keyledger.adapters.authcache import FLUSH
from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import REDIS_ERRORS
from keyledger.adapters.topology import Topology

log = logging.getLogger("keyledger.doorbell")


class Doorbell:
    def __init__(self, topology: Topology, keyspace: Keyspace):
        self.topology = topology
        self.keys = keyspace
        self._pubsub: Any = None
        self._socket: Any = None

    def wait(self, timeout: float) -> set[int] | None:
        """The partitions named by the announcements heard within ``timeout`` seconds
        (empty when none came); None when any partition may have changed unheard."""
        if self._pubsub is None:
            self._subscribe(timeout)
            return None
        try:
            message = self._pubsub.get_message(timeout=timeout)
            rung: set[int] = set()
            while message is not None:
                if getattr(self._pubsub.connection, "_sock", None) is not self._socket:
                    raise ConnectionError("the subscription was made again")
                if message.get("type") == "message":
                    accounts = json.loads(message["data"])
                    if accounts == FLUSH:
                        return None
                    rung.update(self.keys.partition_of(str(a)) for a in accounts)
                message = self._pubsub.get_message(timeout=0)
            return rung
        except (*REDIS_ERRORS, OSError, ValueError) as exc:
            log.warning("doorbell lost its subscription (%s)", type(exc).__name__)
            self.close()
            return None

    def _subscribe(self, timeout: float) -> None:
        pubsub: Any = None
        try:
            pubsub = self.topology.subscriber()
            pubsub.subscribe(self.keys.invalidations())
            confirmation = pubsub.get_message(timeout=max(timeout, 1.0))
            if not confirmation or confirmation.get("type") != "subscribe":
                raise ConnectionError("subscription not confirmed")
        except (*REDIS_ERRORS, OSError, IndexError) as exc:
            log.warning("doorbell cannot subscribe now (%s)", type(exc).__name__)
            if pubsub is not None:
                with contextlib.suppress(*REDIS_ERRORS, OSError):
                    pubsub.close()
            time.sleep(timeout)  # the reader reads everything meanwhile, once per timeout
            return
        self._pubsub, self._socket = pubsub, getattr(pubsub.connection, "_sock", None)

    def close(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS, OSError):
                self._pubsub.close()
        self._pubsub = self._socket = None
