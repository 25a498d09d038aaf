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

**On a Redis Cluster** a ``PUBLISH`` reaches the subscribers of its own node
before the publisher's command returns, and the other nodes' subscribers a
little later, over the cluster bus. So each process subscribes to every primary
(the projector, the append script and the rebuild publish on the primary of
their partition), and the guarantee above holds for every partition; each message
then arrives once per primary, which costs a few dictionary lookups. A background
thread reads which node serves which slots every ``PING_EVERY`` seconds
(``Topology.layout``): on any change (a failover: the promoted replica may lack
the last writes, and nobody subscribes to it yet) or when no node answers,
everything is flushed and every subscription made again, to the primaries of the
new layout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from keyledger import process
from keyledger.adapters import pollnow
from keyledger.adapters.authlookup import Lookup
from keyledger.adapters.redis_client import REDIS_ERRORS
from keyledger.adapters.topology import Layout, Topology

log = logging.getLogger("keyledger.authcache")

FLUSH = "*"
#: The subscription is pinged this often while requests come in; no answer within
#: PONG_TIMEOUT means a silently dead connection: flush and resubscribe.
PING_EVERY = 0.5
PONG_TIMEOUT = 1.0
Pair = tuple[str, str]


@dataclass
class _Subscription:
    pubsub: Any
    socket: Any
    awaiting_pong: float | None
    last_heard: float


class AuthCache:
    def __init__(
        self, topology: Topology, channel: str, capacity: int = 100_000, retry_after: float = 1.0
    ):
        """``capacity``: key pairs kept (``KEYLEDGER_AUTH_CACHE_SIZE``); past it the least
        recently used pair is dropped, and its next request reads Redis again."""
        self.topology = topology
        self.channel = channel
        self.capacity = capacity
        self.retry_after = retry_after
        self._entries: OrderedDict[Pair, tuple[Lookup, frozenset[str]]] = OrderedDict()
        self._by_account: dict[str, set[Pair]] = {}
        self._subscriptions: list[_Subscription] | None = None
        self._listeners: list[Callable[[list[str] | None], None]] = []
        self._next_ping = 0.0
        self._next_attempt = 0.0
        self._epoch = 0
        self._subscriber: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._layout: Layout | None = None
        self._layout_changed = False
        self._pid = process.pid()
        self._lock = threading.Lock()
        #: Set while ``sync`` works under the lock (``_quiet`` then waits for it).
        self._busy = False
        #: The subscriptions' sockets, polled by ``_quiet`` (made again after subscribing).
        self._poller: tuple[list[_Subscription] | None, pollnow.Poller | None] = (None, None)
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
        pubsubs: list[Any] = []
        try:
            layout = self.topology.layout()
            pubsubs = self.topology.subscribers(layout)
            for pubsub in pubsubs:
                pubsub.subscribe(self.channel)
            for pubsub in pubsubs:
                confirmation = pubsub.get_message(timeout=1.0)
                if not confirmation or confirmation.get("type") != "subscribe":
                    raise redis.ConnectionError("subscription not confirmed")
        except (*REDIS_ERRORS, OSError) as exc:
            log.warning("auth cache disabled: cannot subscribe (%s)", type(exc).__name__)
            for pubsub in pubsubs:
                with contextlib.suppress(*REDIS_ERRORS, OSError):
                    pubsub.close()
            with self._lock:
                self._subscriber = None
            return
        with self._lock:
            self._flush()
            now = time.monotonic()
            self._subscriptions = [
                _Subscription(p, getattr(p.connection, "_sock", None), None, now) for p in pubsubs
            ]
            self._next_ping = now + PING_EVERY
            self._layout, self._layout_changed = layout, False
            self._subscriber = None
            if self.topology.clustered and self._watcher is None:
                self._watcher = threading.Thread(target=self._watch_layout, daemon=True)
                self._watcher.start()

    def _watch_layout(self) -> None:
        """Note any change of the cluster's layout (or that none can be read)."""
        pid = process.pid()
        while process.pid() == pid:
            time.sleep(PING_EVERY)
            try:
                layout: Layout | None = self.topology.layout()
            except (*REDIS_ERRORS, OSError):
                layout = None
            with self._lock:
                if self._subscriptions is not None and layout != self._layout:
                    self._layout_changed = True
            if layout is not None and layout != self._layout:
                self.topology.refresh_quietly()

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

        Fast path: one non-blocking ``poll`` on the subscriptions' sockets, keeping the
        GIL (``pollnow``). Each
        slow path drains a subscription completely, so when its socket has nothing to
        read, redis-py's parser holds nothing either. The cache is only trusted while
        every subscription was heard from recently (a reply to the periodic PING at
        the latest): after a silence the first requests go to Redis until the PINGs
        are answered.
        """
        now = time.monotonic()
        quiet = self._quiet(now)
        if quiet is not None:
            return quiet
        with self._lock:
            self._busy = True
            try:
                return self._sync_locked(time.monotonic())  # the lock may have been waited for
            finally:
                self._busy = False

    def _quiet(self, now: float) -> int | None:
        """The epoch, without taking the lock, when nothing is to be done: subscribed in
        this process, heard from lately, no PING due or awaited, no layout change, and
        nothing to read. Else None (``sync`` then does it all under the lock).

        No lock on the path every request takes: with several server threads, a lock
        held by a thread that the GIL had switched away from queued every other thread
        behind it, and the process then handed the GIL over at each request (a convoy:
        about two context switches a decision, four times its cost with two threads).
        ``_busy`` is set before a drain reads the socket: a thread whose poll finds
        nothing because another is draining sees it set, and waits for the lock.
        """
        subscriptions = self._subscriptions
        if (
            subscriptions is None
            or self._busy
            or self._layout_changed
            or now >= self._next_ping
            or self._pid != process.pid()
        ):
            return None
        for held in subscriptions:
            if (
                held.socket is None
                or held.awaiting_pong is not None
                or now - held.last_heard > PING_EVERY + PONG_TIMEOUT
            ):
                return None
        polled, poller = self._poller
        if poller is None or polled is not subscriptions:  # subscribed again: new sockets
            poller = pollnow.Poller([held.socket for held in subscriptions])
            self._poller = (subscriptions, poller)
        if poller.any() or self._busy:  # _busy read after the poll, on purpose
            return None
        return self._epoch

    def _sync_locked(self, now: float) -> int | None:
        """``sync`` under the lock (``_busy`` set)."""
        if self._pid != process.pid():  # forked (gunicorn --preload): start afresh
            self._pid, self._subscriptions, self._subscriber = process.pid(), None, None
            self._watcher = None
            self._flush()
        if self._subscriptions is None:
            self._start_subscribing(now)
            return None
        try:
            if self._layout_changed:
                raise redis.ConnectionError("the cluster's layout changed")
            # Read what has arrived first: a PONG waiting in the socket of a process that
            # had no request for over PONG_TIMEOUT is an answer, not a silence.
            sockets = [held.socket for held in self._subscriptions]
            readable = set(range(len(sockets))) if None in sockets else pollnow.readable(sockets)
            for index, held in enumerate(self._subscriptions):
                if index in readable:
                    self._drain(held, now)
            ping = now >= self._next_ping
            if ping:
                self._next_ping = now + PING_EVERY
            silent = False
            for held in self._subscriptions:
                if held.awaiting_pong is not None and now - held.awaiting_pong > PONG_TIMEOUT:
                    raise redis.ConnectionError("no answer to the subscription's PING")
                if ping and held.awaiting_pong is None:
                    held.pubsub.ping()
                    held.awaiting_pong = now
                if now - held.last_heard > PING_EVERY + PONG_TIMEOUT:
                    silent = True
            if silent:
                return None  # silent for too long: ask Redis until the PING is answered
            return self._epoch
        except (*REDIS_ERRORS, OSError, ValueError) as exc:
            log.warning("auth cache flushed: subscription lost (%s: %s)", type(exc).__name__, exc)
            self._flush()
            for held in self._subscriptions:
                with contextlib.suppress(*REDIS_ERRORS, OSError):
                    held.pubsub.close()
            self._subscriptions = None
            self._layout_changed = False
            return None

    def _drain(self, held: _Subscription, now: float) -> None:
        while True:
            message = held.pubsub.get_message(timeout=0)
            if getattr(held.pubsub.connection, "_sock", None) is not held.socket:
                # redis-py reconnected and resubscribed by itself: what was published
                # in between is lost, so nothing cached may be trusted.
                raise redis.ConnectionError("subscription reconnected")
            if message is None:
                return
            # Anything the server sends proves the connection alive (redis-py's
            # parse of the PING reply differs between RESP versions).
            held.awaiting_pong, held.last_heard = None, now
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
        # No lock (see ``_quiet``): each OrderedDict call is one step under the GIL, and
        # an entry dropped meanwhile by another thread is simply not moved.
        entry = self._entries.get(pair)
        if entry is None:
            self.misses += 1
            return None
        if len(self._entries) * 2 > self.capacity:
            # Least recently used are dropped first. Below half full nothing is near
            # being dropped, and with many keys in use each reordering touches
            # memory far apart: measured, a tenth of a warm decision at 10,000 keys.
            with contextlib.suppress(KeyError):
                self._entries.move_to_end(pair)
        self.hits += 1
        return entry[0]

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, pair: Pair, found: Lookup, epoch: int) -> None:
        """Remember a complete lookup read at ``epoch`` (both keys, account and user found).

        A lookup read before an invalidation that arrived since (in another
        thread) is not kept: it may hold what the invalidation revoked.
        """
        if not (found.account_key and found.account and found.secret_key and found.user):
            return
        accounts = frozenset({found.account_key.account_id, found.secret_key.account_id})
        with self._lock:
            if self._subscriptions is None or epoch != self._epoch:
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
