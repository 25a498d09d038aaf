"""A per-process copy of the authentication records, kept fresh by pub/sub.

With warm caches an authenticated request costs no Redis round trip: the
records of a (account key, secret key) pair are served from process memory.
The projector publishes, in the same MULTI/EXEC that applies a batch, the ids
of the accounts it changed; before every lookup each process drains what has
arrived on its subscription (a non-blocking read of a local socket, no round
trip) and drops those accounts' entries. Redis writes the message to every
subscriber before it answers the poll that tells the writer its change is
applied, so when a DELETE returns, the message is already in every web
process's socket buffer and the next request, in any process, misses the cache.

The append script announces each change on the same channel as soon as it is
recorded, so account state folded in memory (``AccountRepository``) is re-read
before it is shown again, even while the projector is behind.

When the subscription is lost (an error, end of file, or no answer to a PING
within a few seconds), everything is flushed and the cache is bypassed until a
new subscription is confirmed (then flushed again).
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import redis

from app.adapters.authlookup import Lookup

log = logging.getLogger("keyledger.authcache")

FLUSH = "*"
#: The subscription is pinged this often while requests come in; no answer within
#: PONG_TIMEOUT means a silently dead connection: flush and resubscribe.
PING_EVERY = 0.5
PONG_TIMEOUT = 1.0
Pair = tuple[str, str]


class AuthCache:
    def __init__(
        self, client: redis.Redis, channel: str, capacity: int = 100_000, retry_after: float = 1.0
    ):
        self.client = client
        self.channel = channel
        self.capacity = capacity
        self.retry_after = retry_after
        self._entries: OrderedDict[Pair, tuple[Lookup, frozenset[str]]] = OrderedDict()
        self._by_account: dict[str, set[Pair]] = {}
        self._pubsub: Any = None
        self._listeners: list[Callable[[list[str] | None], None]] = []
        self._socket: Any = None
        self._awaiting_pong: float | None = None
        self._next_ping = 0.0
        self._next_attempt = 0.0
        self._lock = threading.Lock()
        self.hits = self.misses = self.invalidations = self.flushes = 0

    # -- subscription ----------------------------------------------------------------------
    def _subscribe(self) -> None:
        now = time.monotonic()
        if now < self._next_attempt:
            return
        self._next_attempt = now + self.retry_after
        pubsub = self.client.pubsub(ignore_subscribe_messages=False)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self.channel)
            confirmation = pubsub.get_message(timeout=1.0)
            if not confirmation or confirmation.get("type") != "subscribe":
                raise redis.ConnectionError("subscription not confirmed")
        except redis.RedisError as exc:
            log.warning("auth cache disabled: cannot subscribe (%s)", type(exc).__name__)
            pubsub.close()
            return
        self._flush()
        self._pubsub = pubsub
        self._socket = getattr(pubsub.connection, "_sock", None)
        self._awaiting_pong, self._next_ping = None, time.monotonic() + PING_EVERY

    def sync(self) -> bool:
        """Apply every invalidation that has arrived; False when the cache must be bypassed.

        Fast path: one non-blocking ``select`` on the subscription's socket. Each
        slow path drains the subscription completely, so when the socket has
        nothing to read, redis-py's parser holds nothing either.
        """
        with self._lock:
            if self._pubsub is None:
                self._subscribe()
                if self._pubsub is None:
                    return False
            now = time.monotonic()
            try:
                if self._awaiting_pong is not None and now - self._awaiting_pong > PONG_TIMEOUT:
                    raise redis.ConnectionError("no answer to the subscription's PING")
                if self._awaiting_pong is None and now >= self._next_ping:
                    self._pubsub.ping()
                    self._awaiting_pong, self._next_ping = now, now + PING_EVERY
                if self._socket is not None and not select.select([self._socket], [], [], 0)[0]:
                    return True
                self._drain()
                return True
            except (redis.RedisError, OSError, ValueError) as exc:
                log.warning("auth cache flushed: subscription lost (%s)", type(exc).__name__)
                self._flush()
                with contextlib.suppress(redis.RedisError, OSError):
                    self._pubsub.close()
                self._pubsub = None
                return False

    def _drain(self) -> None:
        while True:
            message = self._pubsub.get_message(timeout=0)
            if getattr(self._pubsub.connection, "_sock", None) is not self._socket:
                # redis-py reconnected and resubscribed by itself: what was published
                # in between is lost, so nothing cached may be trusted.
                raise redis.ConnectionError("subscription reconnected")
            if message is None:
                return
            # Anything the server sends proves the connection alive (redis-py's
            # parse of the PING reply differs between RESP versions).
            self._awaiting_pong = None
            if message.get("type") == "message":
                self._invalidate(message["data"])

    def subscribe(self, listener: Callable[[list[str] | None], None]) -> None:
        """Also tell ``listener`` which accounts changed (None: everything may have)."""
        self._listeners.append(listener)

    def _invalidate(self, data: str) -> None:
        accounts = json.loads(data)
        if accounts == FLUSH:
            self._flush()
            return
        self.invalidations += 1
        for listener in self._listeners:
            listener(accounts)
        for account in accounts:
            for pair in self._by_account.pop(account, ()):
                entry = self._entries.pop(pair, None)
                if entry is not None:
                    for other in entry[1]:
                        if other != account:
                            self._by_account.get(other, set()).discard(pair)

    def _flush(self) -> None:
        self.flushes += 1
        for listener in self._listeners:
            listener(None)
        self._entries.clear()
        self._by_account.clear()

    # -- entries ---------------------------------------------------------------------------
    def get(self, pair: Pair) -> Lookup | None:
        with self._lock:
            entry = self._entries.get(pair)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            return entry[0]

    def put(self, pair: Pair, found: Lookup) -> None:
        """Remember a complete lookup (both keys, account and user found)."""
        if not (found.account_key and found.account and found.secret_key and found.user):
            return
        accounts = frozenset({found.account_key.account_id, found.secret_key.account_id})
        with self._lock:
            if self._pubsub is None:
                return
            self._entries[pair] = (found, accounts)
            for account in accounts:
                self._by_account.setdefault(account, set()).add(pair)
            while len(self._entries) > self.capacity:
                old_pair, (_, old_accounts) = self._entries.popitem(last=False)
                for account in old_accounts:
                    self._by_account.get(account, set()).discard(old_pair)


def publish_invalidation(pipe: Any, channel: str, accounts: list[str] | str) -> None:
    """Tell every web process to drop these accounts (``FLUSH``: everything)."""
    pipe.publish(channel, json.dumps(accounts if accounts == FLUSH else sorted(set(accounts))))
