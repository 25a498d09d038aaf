"""Rate limit per account key: N requests per minute (Redis Cloud: 400), shared by
every web process and host, without a Redis round trip per request.

Fixed one-minute windows on the Redis server's clock (so web hosts with skewed
clocks agree). The count of a window lives in Redis; each process **leases** a
slice of what is left in one script call and spends it in memory (thread-safe),
so a busy key costs one script call per lease instead of one per request. The
whole design, its bounds and their reasons are in ``docs/rate-limits.md``; in
short:

* **Never more than N in a window.** Redis hands out at most what the window has
  left, and a process spends a slice only in the window it was leased for: a
  lease's local deadline is taken from the Redis answer and counted from the
  moment the call was *sent*, so it ends before the window does.
* **A lease lives at most ``LEASE_SECONDS``** after the call that granted or
  renewed it was sent: a process whose Redis stops answering stops admitting
  within a second (within the "When Redis stops answering" window of docs/integrators.md), and
  a failed background renewal drops the lease at once.
* **Leases are sized to the limit and to the use.** A lease is at most a
  sixteenth of what the window has left (``LEASE_DIVISOR``), at most
  ``MAX_LEASE``, and at most twice what this process spent of its previous
  lease: small limits (under 32) and quiet keys lease one request at a time and
  stay exact, as with one call per request.
* Slices left when a lease expires go back to the window at the process's next
  call for that key; slices a process still holds when the window ends are lost
  (the cost of leasing is under-admission, never over-admission).
* A busy lease is renewed in the background (a thread per process) when it is
  down to half or half its life has passed, so requests rarely wait on Redis.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from keyledger import process
from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import REDIS_ERRORS, translated_errors
from keyledger.adapters.topology import Client

log = logging.getLogger("keyledger.ratelimit")

WINDOW_SECONDS = 60
#: A lease is spent at most this long after the call that granted or renewed it was sent.
LEASE_SECONDS = 1.0
#: A lease in use is renewed in the background once it is this old (or down to half).
RENEW_AFTER = 0.5
#: A lease is at most this fraction of what the window has left ...
LEASE_DIVISOR = 16
#: ... and at most this many requests.
MAX_LEASE = 200

LEASE_SCRIPT = """
-- KEYS[1]: the account key's counter hash {window, count}
-- ARGV: limit, window seconds, divisor, max lease, wanted, held window, returned, holding
redis.replicate_commands()
local now = redis.call('TIME')
local width = tonumber(ARGV[2])
local seconds = tonumber(now[1])
local window = math.floor(seconds / width)
-- Rounded down: a lease's local end (sent + ms_left) must never fall after the window's.
local ms_left = math.floor((((window + 1) * width - seconds) * 1000000 - tonumber(now[2])) / 1000)
local stored = redis.call('HMGET', KEYS[1], 'window', 'count')
local count = 0
if stored[1] == tostring(window) then
  count = tonumber(stored[2])
end
local holding = 0
if ARGV[6] == tostring(window) then
  count = math.max(count - tonumber(ARGV[7]), 0)
  holding = tonumber(ARGV[8])
end
local left = math.max(tonumber(ARGV[1]) - count, 0)
local size = math.floor(left / tonumber(ARGV[3]))
size = math.max(math.min(size, tonumber(ARGV[4]), tonumber(ARGV[5])), 1)
local grant = math.max(math.min(size - holding, left), 0)
count = count + grant
redis.call('HSET', KEYS[1], 'window', tostring(window), 'count', count)
redis.call('PEXPIRE', KEYS[1], ms_left + 1000)
return {grant, count, ms_left, window}
"""


class Allowance(NamedTuple):
    """A rate-limit decision (a tuple: made on every admitted request, and a frozen
    dataclass cost 1.44 us to build against 0.81 us, timeit less its call)."""

    allowed: bool
    remaining: int
    retry_after: int
    #: The window (Redis time // window seconds) an admitted request was counted in.
    window: int | None = None


@dataclass(slots=True)
class _Lease:
    """What one process holds of one account key's window."""

    window: int
    left: int  # slices this process may still spend
    deadline: float  # monotonic: spend only before (the window's end or LEASE_SECONDS)
    window_end: float  # monotonic, conservative
    unleased: int  # what Redis had not handed out at the latest call
    renewed: float  # monotonic: when the latest call was sent
    spent: int = 0  # spent since the latest call
    wanted: int = 1  # what the latest call asked for
    renewing: bool = False
    #: monotonic: the window had nothing left at the latest call; refuse until then
    refused_until: float = 0.0


@dataclass(frozen=True)
class _Grant:
    granted: int
    count: int
    ms_left: int
    window: int
    sent: float
    wanted: int


class RateLimiter:
    def __init__(
        self,
        client: Client,
        keyspace: Keyspace,
        per_minute: int,
        *,
        capacity: int = 100_000,
        window_seconds: int = WINDOW_SECONDS,
        background: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
        lane: str = "",
    ):
        self.client = client
        self.keys = keyspace
        self.per_minute = per_minute
        #: A second budget of the same account keys, counted apart (``"revocations"``:
        #: what other requests spend can never block a revocation; ``docs/rate-limits.md``).
        self.lane = lane
        #: Account keys whose lease this process remembers (least recently used go first).
        self.capacity = capacity
        #: The window's length: 60 (a test may shorten it; the limit is per window).
        self.window_seconds = window_seconds
        self.background = background
        self.monotonic = monotonic
        self._lease = client.register_script(LEASE_SCRIPT)
        self._leases: OrderedDict[str, _Lease] = OrderedDict()
        self._lock = threading.Lock()
        self._pid = process.pid()
        self._renewals: queue.SimpleQueue[str] | None = None
        #: Script calls made (with the request waiting / in the background): for tests.
        self.calls = self.background_calls = 0

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def hit(self, account_key_id: str) -> Allowance:
        """Count one request of this account key: allowed, with what remains, or not."""
        now = self.monotonic()
        with self._lock:
            if self._pid != process.pid():  # forked: the parent's leases are the parent's
                self._pid, self._renewals = process.pid(), None
                self._leases.clear()
            lease = self._leases.get(account_key_id)
            if lease is not None and lease.left > 0 and now < lease.deadline:
                self._leases.move_to_end(account_key_id)
                allowance = self._spend(lease, now)
                if self.background and not lease.renewing and self._due(lease, now):
                    lease.renewing = True
                    self._queue().put(account_key_id)
                return allowance
            if lease is not None and now < lease.refused_until:
                return Allowance(False, 0, max(1, math.ceil(lease.window_end - now)))
            wanted = 1 if lease is None else self._wanted(lease)
            held, returned = self._surrender(lease)
            if lease is not None:
                lease.spent = 0
        grant = self._call(account_key_id, wanted, held, returned, 0)
        with self._lock:
            lease = self._merge(account_key_id, grant)
            if lease is not None and lease.left > 0 and self.monotonic() < lease.deadline:
                return self._spend(lease, now)
            if grant.granted > 0:
                return self._counted(lease, grant, now)
            if (
                lease is not None
                and lease.window == grant.window
                and grant.count >= self.per_minute
            ):
                # Nothing left in the window: refuse without asking again for a while
                # (slices other processes give back are seen within LEASE_SECONDS).
                lease.refused_until = lease.deadline
        return Allowance(False, 0, max(1, math.ceil(grant.ms_left / 1000)))

    # -- in memory -------------------------------------------------------------------------
    def _spend(self, lease: _Lease, now: float) -> Allowance:
        lease.left -= 1
        lease.spent += 1
        return Allowance(
            True,
            # What Redis had not leased at the latest call sent, plus this process's
            # slices. Two calls' answers can come back in the other order than Redis
            # ran them (two connections), so the sum may hold a grant newer than that
            # count: never more than the limit less this request, though.
            min(lease.unleased + lease.left, self.per_minute - 1),
            max(1, math.ceil(lease.window_end - now)),
            lease.window,
        )

    def _counted(self, lease: _Lease | None, grant: _Grant, now: float) -> Allowance:
        """Admit the request a grant was made for, though its lease cannot be spent.

        The script ran atomically inside ``grant.window`` and counted this request
        there, so admitting it keeps the window at N. Only the rest of the grant is
        lost (fewer admitted, never more): the window ended, or the lease's life ran
        out, while the answer came back, or a newer window's lease had replaced it.
        Refusing here answered 429 at minute boundaries with a limit nobody reached.
        """
        if lease is not None and lease.window == grant.window and lease.left > 0:
            return self._spend(lease, now)  # the slice comes out of what is given back
        return Allowance(
            True,
            max(self.per_minute - grant.count, 0),
            max(1, math.ceil(grant.ms_left / 1000)),
            grant.window,
        )

    @staticmethod
    def _due(lease: _Lease, now: float) -> bool:
        """Renew ahead of need: down to half of what was wanted, or half its life gone.
        At a quarter, the background call often came back after the lease was spent (its
        thread waits for the GIL behind the server's), and a request waited on Redis:
        4 threads, 160,000 requests, 532-1,271 such waits; at half, 13-20."""
        if lease.left <= 0:
            return False  # the next request calls Redis itself
        return lease.left * 2 <= lease.wanted or now - lease.renewed >= RENEW_AFTER

    @staticmethod
    def _wanted(lease: _Lease) -> int:
        """Twice what was spent since the latest call (so a lease follows the use)."""
        return min(max(1, 2 * lease.spent), MAX_LEASE)

    def _surrender(self, lease: _Lease | None) -> tuple[int | None, int]:
        """Take an unusable lease's slices out of memory, to give them back (its window
        is named: Redis takes them back only in that same window)."""
        if lease is None or lease.left <= 0:
            return None, 0
        returned, lease.left = lease.left, 0
        return lease.window, returned

    def _merge(self, account_key_id: str, grant: _Grant) -> _Lease | None:
        """Add what Redis granted to this process's lease of the key."""
        limit = self.per_minute
        window_end = grant.sent + grant.ms_left / 1000
        deadline = min(window_end, grant.sent + LEASE_SECONDS)
        lease = self._leases.get(account_key_id)
        if lease is None or grant.window > lease.window:
            lease = _Lease(
                grant.window, grant.granted, deadline, window_end, limit - grant.count, grant.sent
            )
            self._leases[account_key_id] = lease
        elif grant.window == lease.window:
            lease.left += grant.granted
            if grant.sent >= lease.renewed:
                lease.deadline, lease.window_end = deadline, window_end
                lease.unleased, lease.renewed = limit - grant.count, grant.sent
        else:
            return lease  # granted in a window that is over: nothing to add
        lease.wanted = grant.wanted
        self._leases.move_to_end(account_key_id)
        while len(self._leases) > self.capacity:
            self._leases.popitem(last=False)  # its slices are lost to this window: fewer, not more
        return lease

    # -- Redis -----------------------------------------------------------------------------
    def _call(
        self, account_key_id: str, wanted: int, held: int | None, returned: int, holding: int
    ) -> _Grant:
        sent = self.monotonic()
        with translated_errors():
            granted, count, ms_left, window = self._lease(
                keys=[self.keys.rate_limit(account_key_id, self.lane)],
                args=[
                    self.per_minute,
                    self.window_seconds,
                    LEASE_DIVISOR,
                    MAX_LEASE,
                    wanted,
                    "" if held is None else held,
                    returned,
                    holding,
                ],
            )
        if holding:
            self.background_calls += 1
        else:
            self.calls += 1
        return _Grant(int(granted), int(count), int(ms_left), int(window), sent, wanted)

    def _queue(self) -> queue.SimpleQueue[str]:
        if self._renewals is None:
            self._renewals = queue.SimpleQueue()
            threading.Thread(
                target=self._renew_forever,
                args=(self._renewals,),
                name="rate-limit-leases",
                daemon=True,
            ).start()
        return self._renewals

    def _renew_forever(self, renewals: queue.SimpleQueue[str]) -> None:
        while True:
            self.renew(renewals.get())

    def renew(self, account_key_id: str) -> None:
        """Top this process's lease of the key up (the background thread calls this)."""
        with self._lock:
            lease = self._leases.get(account_key_id)
            if lease is None:
                return
            now = self.monotonic()
            if lease.left <= 0 or now >= lease.deadline:
                lease.renewing = False  # the next request calls Redis itself
                return
            window, holding, wanted = lease.window, lease.left, self._wanted(lease)
            lease.spent = 0
        try:
            grant = self._call(account_key_id, max(wanted, holding), window, 0, holding)
        except Exception as exc:  # any failure ends the lease (and is told): never the thread
            with self._lock:
                lease = self._leases.get(account_key_id)
                if lease is not None:
                    lease.left, lease.renewing = 0, False  # Redis unsure: ask it per request
            cause = exc.__cause__ if isinstance(exc.__cause__, REDIS_ERRORS) else exc
            log.warning("rate-limit lease dropped: renewal failed (%s)", type(cause).__name__)
            return
        with self._lock:
            lease = self._merge(account_key_id, grant)
            if lease is not None:
                lease.renewing = False
