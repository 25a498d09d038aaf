"""When and from where each key was last used: noted in memory, written in batches.

A use is not a change to the account, so it is not an event, and it lives outside
the rebuildable projections (``Keyspace.last_used``: one hash per partition, key id
-> ``"<epoch ms> <source address>"``), where a rebuild neither deletes nor rewrites
it. No request writes to Redis for it: each process notes the latest use of each
key in memory (``note``, a dictionary update) and a background thread writes what
it noted every ``interval`` seconds, one script call per partition, keeping the
later of the stored and the noted use, so a slow or late writer never moves a
time backwards. What a process noted is also written when it exits normally
(``keyledger.exiting``: forked web workers too); a process killed outright loses
at most one interval of uses.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from keyledger import process
from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import REDIS_ERRORS, store_call
from keyledger.adapters.topology import Client
from keyledger.exiting import at_exit

log = logging.getLogger("keyledger.lastused")

#: KEYS[1]: the partition's hash; ARGV: key id, epoch ms, source address, ... (triples).
KEEP_LATEST = """
for i = 1, #ARGV, 3 do
  local stored = redis.call('HGET', KEYS[1], ARGV[i])
  local at = stored and tonumber(string.match(stored, '^%d+')) or -1
  if tonumber(ARGV[i + 1]) > at then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. ' ' .. ARGV[i + 2])
  end
end
return 1
"""
MAX_PER_CALL = 500  # key ids per script call: each call blocks Redis only briefly


@dataclass(frozen=True)
class LastUse:
    at: float  # epoch seconds
    source_ip: str


def parse(stored: str | None) -> LastUse | None:
    if not stored:
        return None
    millis, _, source = stored.partition(" ")
    try:
        return LastUse(int(millis) / 1000, source)
    except ValueError:
        return None


def _keep_latest(
    noted: dict[str, tuple[int, str]], key_ids: Iterable[str], at: int, source: str
) -> None:
    """Note a use of ``key_ids`` at ``at`` unless a later one is noted already."""
    for key_id in key_ids:
        known = noted.get(key_id)
        if known is None or known[0] < at:
            noted[key_id] = (at, source)


class LastUseRecorder:
    def __init__(
        self,
        client: Client,
        keyspace: Keyspace,
        interval: float,
        clock: Callable[[], float] = time.time,
    ):
        self.client = client
        self.keys = keyspace
        self.interval = interval
        self.clock = clock
        self._noted: dict[str, tuple[int, str]] = {}
        #: Notes made while ``_lock`` was held elsewhere (``deque.append`` is atomic).
        self._queued: collections.deque[tuple[tuple[str, ...], int, str]] = collections.deque()
        self._lock = threading.Lock()
        self._script = client.register_script(KEEP_LATEST)
        self._thread: threading.Thread | None = None
        self._pid = process.pid()
        self._stop = threading.Event()
        self._listeners: list[Callable[[], None]] = []
        self.flushes = 0

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Also tell ``listener`` after each write (whoever shows last uses re-reads them)."""
        self._listeners.append(listener)

    def note(self, key_ids: Iterable[str], source_ip: str | None) -> None:
        """Remember a use of these keys now (memory only; the flusher writes it)."""
        at, source = int(self.clock() * 1000), source_ip or ""
        # Never wait for the lock on the request path (a convoy of server threads behind
        # one the GIL switched away from: docs/operators.md "Performance"). Busy: the
        # note is queued, and the flush takes it.
        if not self._lock.acquire(blocking=False):
            self._queued.append((tuple(key_ids), at, source))
            return
        try:
            if self._pid != process.pid():  # forked: the parent's notes are the parent's
                self._pid, self._thread = process.pid(), None
                self._noted.clear()
                self._queued.clear()
            _keep_latest(self._noted, key_ids, at, source)
            if self._thread is None and self.interval > 0:
                self._start()
        finally:
            self._lock.release()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="last-use-flush", daemon=True)
        self._thread.start()
        at_exit(self.flush_at_exit)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush_quietly()

    def flush_quietly(self) -> None:
        try:
            self.flush()
        except REDIS_ERRORS as exc:
            log.warning("could not write last uses now (%s); retrying later", type(exc).__name__)

    def flush_at_exit(self) -> None:
        """Write what is left when the process exits; Redis may be gone already (then
        these last uses are lost, as they would be on a kill: last use is approximate)."""
        try:
            self.flush()
        except REDIS_ERRORS as exc:
            log.info("last uses noted by this process not written at exit (%s)", exc)

    def flush(self) -> int:
        """Write what was noted since the last flush; how many keys. On an error the
        notes are kept (merged with newer ones) for the next try."""
        with self._lock:
            noted, self._noted = self._noted, {}
        while self._queued:  # notes made while the lock was busy
            _keep_latest(noted, *self._queued.popleft())
        if not noted:
            return 0
        by_partition: dict[int, list[str]] = {}
        for key_id, (at, source) in noted.items():
            partition = self._partition(key_id)
            if partition is not None:
                by_partition.setdefault(partition, []).extend((key_id, str(at), source))
        try:
            for partition, args in by_partition.items():
                for start in range(0, len(args), 3 * MAX_PER_CALL):
                    self._script(
                        keys=[self.keys.last_used(partition)],
                        args=args[start : start + 3 * MAX_PER_CALL],
                    )
        except REDIS_ERRORS:
            with self._lock:
                for key_id, (at, source) in noted.items():
                    _keep_latest(self._noted, (key_id,), at, source)
            raise
        self.flushes += 1
        for listener in self._listeners:
            listener()
        return len(noted)

    def _partition(self, key_id: str) -> int | None:
        try:
            partition = int(key_id[:2], 16)
        except ValueError:
            return None
        return partition if partition < self.keys.partitions else None

    def stop(self) -> None:
        self._stop.set()


class LastUseReader:
    def __init__(self, client: Client, keyspace: Keyspace):
        self.client = client
        self.keys = keyspace

    @store_call
    def of(self, partition: int, key_ids: list[str]) -> dict[str, LastUse]:
        """The stored last use of each of these keys (of one partition) that was ever used."""
        if not key_ids:
            return {}
        values = self.client.hmget(self.keys.last_used(partition), key_ids)
        found = {
            key_id: parse(None if value is None else str(value))
            for key_id, value in zip(key_ids, values, strict=True)
        }
        return {key_id: use for key_id, use in found.items() if use is not None}
