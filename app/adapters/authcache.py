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
import os
import select
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import redis

from keyledger.adapters.authlookup import Lookup

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
        self._last_heard = 0.0
        self._epoch = 0
        self._subscriber: threading.Thread | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self.hits = self.misses = self.invalidations = self.flushes = 0

    # -- subscription ----------------------------------------------------------------------
    def _start_subscribing(self, now: float) -> None:
        """Subscribe in the background: a request never waits for it (bypassing the cache)."""
        if self._subscriber is not None or now < self._next_attempt:
            return
        self._next_attempt = now + self.retry_after
        self._subscriber = threading.Thread(target=self._subscribe, daemon=True)
        self._subscriber.start()

    def _subscribe(self) -> None:
        pubsub = self.client.pubsub(ignore_subscribe_messages=False)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self.channel)
            confirmation = pubsub.get_message(timeout=1.0)
            if not confirmation or confirmation.get("type") != "subscribe":
                raise redis.ConnectionError("subscription not confirmed")
        except (redis.RedisError, OSError) as exc:
            log.warning("auth cache disabled: cannot subscribe (%s)", type(exc).__name__)
            with contextlib.suppress(redis.RedisError, OSError):
                pubsub.close()
            with self._lock:
                self._subscriber = None
            return
        with self._lock:
            self._flush()
            self._pubsub = pubsub
            self._socket = getattr(pubsub.connection, "_sock", None)
            self._awaiting_pong, self._last_heard = None, time.monotonic()
            self._next_ping = self._last_heard + PING_EVERY
            self._subscriber = None

    def wait_until_subscribed(self, timeout: float = 5.0) -> bool:
        """Start subscribing now and wait for it (start-up, tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sync() is not None:
                return True
            time.sleep(0.005)
        return False

    def live(self, wait: float) -> bool:
        """Whether the subscription is confirmed and the server was heard from recently
        (readiness). After a quiet spell the first ``sync`` sends a PING and distrusts
        the cache until it is answered: wait up to ``wait`` seconds for that."""
        deadline = time.monotonic() + wait
        while self.sync() is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    @property
    def epoch(self) -> int:
        """Counts invalidations and flushes: a lookup made before a change has an older one."""
        return self._epoch

    def sync(self) -> int | None:
        """Apply every invalidation that has arrived; the epoch, or None to bypass the cache.

        Fast path: one non-blocking ``select`` on the subscription's socket. Each
        slow path drains the subscription completely, so when the socket has
        nothing to read, redis-py's parser holds nothing either. The cache is
        only trusted while the server was heard from recently (a reply to the
        periodic PING at the latest): after a silence the first requests go to
        Redis until the PING is answered.
        """
        with self._lock:
            now = time.monotonic()
            if self._pid != os.getpid():  # forked (gunicorn --preload): start afresh
                self._pid, self._pubsub, self._subscriber = os.getpid(), None, None
                self._flush()
            if self._pubsub is None:
                self._start_subscribing(now)
                return None
            try:
                if self._awaiting_pong is not None and now - self._awaiting_pong > PONG_TIMEOUT:
                    raise redis.ConnectionError("no answer to the subscription's PING")
                if self._awaiting_pong is None and now >= self._next_ping:
                    self._pubsub.ping()
                    self._awaiting_pong, self._next_ping = now, now + PING_EVERY
                if self._socket is None or select.select([self._socket], [], [], 0)[0]:
                    self._drain(now)
                if now - self._last_heard > PING_EVERY + PONG_TIMEOUT:
                    return None  # silent for too long: ask Redis until the PING is answered
                return self._epoch
            except (redis.RedisError, OSError, ValueError) as exc:
                log.warning("auth cache flushed: subscription lost (%s)", type(exc).__name__)
                self._flush()
                with contextlib.suppress(redis.RedisError, OSError):
                    self._pubsub.close()
                self._pubsub = None
                return None

    def _drain(self, now: float) -> None:
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
            self._awaiting_pong, self._last_heard = None, now
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
        self._epoch += 1
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
        self._epoch += 1
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

    def put(self, pair: Pair, found: Lookup, epoch: int) -> None:
        """Remember a complete lookup read at ``epoch`` (both keys, account and user found).

        A lookup read before an invalidation that arrived since (in another
        thread) is not kept: it may hold what the invalidation revoked.
        """
        if not (found.account_key and found.account and found.secret_key and found.user):
            return
        accounts = frozenset({found.account_key.account_id, found.secret_key.account_id})
        with self._lock:
            if self._pubsub is None or epoch != self._epoch:
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
