"""The projector: keeps the authentication lookup and the system log up to date.

Correctness does not depend on which consumer a log entry was delivered to:
the consumer group only wakes the projector up. For each partition it applies
the log itself, in order, from its checkpoint onwards, with no gaps. A batch,
its checkpoints and the ``XACK`` of every entry it applied commit together in
one MULTI/EXEC under WATCH of the checkpoints, so:

- replaying an entry changes nothing (entries at or below the checkpoint are
  skipped);
- several projectors may run at once: the WATCH lets one of them apply a range
  and the others retry past it, and per-account order is the log's order;
- a projector killed at any moment loses nothing: what it had read but not
  applied is still after the checkpoint, and its pending entries are claimed
  (``XAUTOCLAIM``) and acknowledged by whoever applies them.

An entry that cannot be decoded or applied is parked in the partition's
dead-letter stream with its error, and its partition halts, loudly and for
every projector (the halt is recorded in Redis): skipping it could skip a
revocation. ``keyledger deadletter`` shows, retries or (explicitly) skips it.

**On a Redis Cluster** each partition's transaction runs on the plain client of
the node serving its slot (``Topology``), and the projector waits for work on the
append's announcement (``adapters.doorbell``) instead of one blocking read over
every partition (a cluster refuses a read across slots); then it reads, without
blocking, the partitions named, or every partition that is behind when the wait
times out. A node that moved or failed sends it back to reading the slot map.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any

import redis
from redis.exceptions import RedisClusterException

from keyledger.adapters.authcache import publish_invalidation
from keyledger.adapters.doorbell import Doorbell
from keyledger.adapters.keyspace import PROJECTIONS, Keyspace
from keyledger.adapters.redis_client import (
    Entries,
    as_entries,
    as_streams,
    is_busygroup,
    stream_id,
)
from keyledger.adapters.topology import REFUSALS, Client, Topology
from keyledger.domain.events import Event
from keyledger.domain.mapper import from_record
from keyledger.workers.projections import auth, syslog

log = logging.getLogger("keyledger.projector")

StreamId = tuple[int, int]
ORIGIN: StreamId = (0, 0)


def format_id(position: StreamId) -> str:
    return f"{position[0]}-{position[1]}"


class Projector:
    def __init__(
        self,
        client: Client,
        keyspace: Keyspace,
        consumer: str | None = None,
        batch: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        topology: Topology | None = None,
    ):
        self.client = client
        self.topology = topology or Topology(client)
        self.doorbell = Doorbell(self.topology, keyspace)
        self.keys = keyspace
        self.group = keyspace.consumer_group()
        self.consumer = consumer or socket.gethostname()
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.halted: dict[int, str] = {}
        self.applied = 0
        self._last_reclaim = 0.0

    # -- lifecycle -------------------------------------------------------------------------
    def setup(self) -> None:
        for partition in range(self.keys.partitions):
            try:
                self.client.xgroup_create(
                    self.keys.log(partition), self.group, id="0", mkstream=True
                )
            except redis.ResponseError as exc:
                if not is_busygroup(exc):
                    raise

    def run(self, stop: threading.Event) -> None:
        """Project until ``stop`` is set; survive Redis outages by reconnecting."""
        ready = False
        while not stop.is_set():
            try:
                if not ready:
                    self.setup()
                    self.recover(min_idle_ms=0)
                    ready = True
                    log.info(
                        "projector %s consuming %d partitions", self.consumer, self.keys.partitions
                    )
                self.step()
                if time.monotonic() - self._last_reclaim > self.claim_idle_ms / 1000:
                    self.recover(min_idle_ms=self.claim_idle_ms)
            except (
                redis.ConnectionError,
                redis.TimeoutError,
                *REFUSALS,
                RedisClusterException,
            ) as exc:
                ready = False
                log.warning("redis unavailable (%s); retrying in 1 s", type(exc).__name__)
                self.doorbell.close()
                stop.wait(1.0)
                self.topology.refresh_quietly()

    def recover(self, min_idle_ms: int) -> None:
        """Catch up every partition, then claim and settle entries left pending.

        At start-up (``min_idle_ms=0``) this also settles this consumer's own
        pending entries from before a crash.
        """
        self._last_reclaim = time.monotonic()
        self.refresh_halts()
        for partition in self._live_partitions():
            self.catch_up(partition)
            cursor = "0-0"
            while True:
                reply = self.client.xautoclaim(
                    self.keys.log(partition),
                    self.group,
                    self.consumer,
                    min_idle_time=min_idle_ms,
                    start_id=cursor,
                    count=self.batch,
                )
                # Not JUSTID: redis-py drops the cursor from JUSTID replies.
                cursor, claimed = str(reply[0]), [entry_id for entry_id, _ in as_entries(reply[1])]
                if claimed:
                    self.catch_up(partition)
                    self._ack_applied(partition, claimed)
                if cursor == "0-0":
                    break

    # -- consuming -------------------------------------------------------------------------
    def step(self) -> int:
        """Wait for deliveries (at most ``block_ms``) and apply what they announce."""
        self.refresh_halts()
        live = self._live_partitions()
        if not live:
            time.sleep(self.block_ms / 1000)
            return 0
        done = 0
        for partition, delivered in self._deliveries(live):
            done += self.catch_up(partition)
            self._ack_applied(partition, delivered)
        return done

    def _deliveries(self, live: list[int]) -> list[tuple[int, list[str]]]:
        """The partitions to catch up, with the entry ids delivered to this consumer."""
        if not self.topology.clustered:
            streams: dict[Any, Any] = {self.keys.log(p): ">" for p in live}
            reply = as_streams(
                self.client.xreadgroup(
                    self.group, self.consumer, streams, count=self.batch, block=self.block_ms
                )
            )
            return [(self._partition_of(s), [i for i, _ in entries]) for s, entries in reply]
        rung = self.doorbell.wait(self.block_ms / 1000)
        woken = [p for p in live if p in rung] if rung else self._behind(live)
        deliveries = []
        for partition in woken:
            reply = as_streams(
                self.client.xreadgroup(
                    self.group, self.consumer, {self.keys.log(partition): ">"}, count=self.batch
                )
            )
            deliveries.append((partition, [i for _, entries in reply for i, _ in entries]))
        return deliveries

    def _behind(self, partitions: list[int]) -> list[int]:
        """The partitions whose log has entries after their checkpoints (one pipeline
        per node): what a lost announcement would have left unapplied."""
        behind = []
        for node, group in self.topology.by_primary({p: self.keys.log(p) for p in partitions}):
            pipe = node.client.pipeline(transaction=False)
            for partition in group:
                pipe.xrevrange(self.keys.log(partition), count=1)
                pipe.mget([self.keys.checkpoint(name, partition) for name in PROJECTIONS])
            replies = pipe.execute()
            for index, partition in enumerate(group):
                last, checkpoints = as_entries(replies[2 * index]), replies[2 * index + 1]
                reached = min((stream_id(str(c)) if c else ORIGIN) for c in checkpoints)
                if last and stream_id(last[0][0]) > reached:
                    behind.append(partition)
        return behind

    def _node(self, partition: int) -> redis.Redis:
        """The plain client of the node serving the partition (the one Redis, if single)."""
        return self.topology.primary(self.keys.log(partition)).client

    def catch_up(self, partition: int) -> int:
        """Apply the partition's log from its checkpoint to its end; return how many."""
        total = 0
        while partition not in self.halted:
            applied, more = self._apply_next_batch(partition)
            total += applied
            if not more:
                break
        return total

    def position(self, partition: int) -> StreamId:
        values = self._node(partition).mget(
            [self.keys.checkpoint(p, partition) for p in PROJECTIONS]
        )
        return min((stream_id(str(v)) if v else ORIGIN) for v in values)

    def _apply_next_batch(self, partition: int) -> tuple[int, bool]:
        checkpoints = [self.keys.checkpoint(name, partition) for name in PROJECTIONS]
        log_key = self.keys.log(partition)
        with self._node(partition).pipeline() as pipe:
            while True:
                try:
                    pipe.watch(*checkpoints)  # type: ignore[no-untyped-call]
                    values = pipe.mget(checkpoints)
                    position = min((stream_id(str(v)) if v else ORIGIN) for v in values)
                    low = "-" if position == ORIGIN else f"({format_id(position)}"
                    entries = as_entries(pipe.xrange(log_key, min=low, count=self.batch))
                    decoded = self._decode(partition, entries, position)
                    if not decoded:
                        pipe.reset()
                        return 0, False
                    pipe.multi()
                    self._write(pipe, decoded)
                    for key in checkpoints:
                        pipe.set(key, decoded[-1][0])
                    pipe.xack(log_key, self.group, *[entry_id for entry_id, _ in decoded])
                    publish_invalidation(
                        pipe, self.keys.invalidations(), [e.account_id for _, e in decoded]
                    )
                    try:
                        pipe.execute()
                    except REFUSALS:
                        raise  # another node serves the partition now: nothing was written
                    except redis.ResponseError as exc:
                        # A MULTI is not rolled back: some writes of this batch (and
                        # its checkpoint) may have committed. Stop here, loudly.
                        self._halt(
                            partition,
                            decoded[0][0],
                            RuntimeError(
                                f"a projection write failed ({exc}); the projections of "
                                "this partition may be damaged: run 'keyledger projections "
                                "rebuild', then 'keyledger deadletter retry'"
                            ),
                            dict(entries[0][1]),
                        )
                        return 0, False
                    self.applied += len(decoded)
                    complete = len(decoded) == len(entries)
                    return len(decoded), complete and len(entries) == self.batch
                except redis.WatchError:
                    continue

    def apply_entries(self, partition: int, entries: Entries) -> int:
        """Apply given entries of a partition; entries at or below the checkpoint are skipped."""
        with self._node(partition).pipeline() as pipe:
            checkpoints = [self.keys.checkpoint(name, partition) for name in PROJECTIONS]
            decoded = self._decode(partition, entries, self.position(partition))
            if not decoded:
                return 0
            pipe.multi()
            self._write(pipe, decoded)
            for key in checkpoints:
                pipe.set(key, decoded[-1][0])
            pipe.execute()
        self.applied += len(decoded)
        return len(decoded)

    def _write(self, pipe: Any, decoded: list[tuple[str, Event]]) -> None:
        for entry_id, event in decoded:
            auth.apply(pipe, self.keys, event)
            syslog.apply(pipe, self.keys, event, entry_id)

    def _ack_applied(self, partition: int, entry_ids: list[str]) -> None:
        """Acknowledge delivered entries that are applied (perhaps by another projector)."""
        reached = self.position(partition)
        done = [i for i in entry_ids if stream_id(i) <= reached]
        if done:
            self.client.xack(self.keys.log(partition), self.group, *done)

    def _decode(
        self, partition: int, entries: Entries, position: StreamId
    ) -> list[tuple[str, Event]]:
        decoded: list[tuple[str, Event]] = []
        for entry_id, fields in entries:
            if stream_id(entry_id) <= position:
                continue  # already applied: a replay changes nothing
            try:
                if not fields:
                    raise ValueError("entry has no fields (deleted from the log?)")
                event = from_record(fields)
                auth.apply(_DryRun(), self.keys, event)
                syslog.as_json(event)
            except Exception as exc:
                self._halt(partition, entry_id, exc, fields)
                break
            decoded.append((entry_id, event))
        return decoded

    def _halt(self, partition: int, entry_id: str, exc: Exception, fields: dict[str, str]) -> None:
        self.halted[partition] = f"{entry_id}: {exc}"
        marker = self.keys.halted(partition)
        if self.client.hsetnx(marker, "entry", entry_id):
            error = f"{type(exc).__name__}: {exc}"[:2000]
            pipe = self._node(partition).pipeline()
            pipe.hset(
                marker,
                mapping={"error": error, "since": str(int(time.time())), "by": self.consumer},
            )
            pipe.xadd(
                self.keys.dead_letters(partition),
                {"entry": entry_id, "error": error, "fields": json.dumps(fields, sort_keys=True)},
            )
            pipe.execute()
        log.critical(
            "HALTED partition %d at entry %s: %s. Authentication data of its accounts "
            "is frozen at the entry before until this is resolved.",
            partition,
            entry_id,
            exc,
        )

    def refresh_halts(self) -> None:
        """Adopt halts recorded by any projector; forget those an operator cleared."""
        pipe = self.client.pipeline(transaction=False)
        for partition in range(self.keys.partitions):
            pipe.hget(self.keys.halted(partition), "entry")
        for partition, entry in enumerate(pipe.execute()):
            if entry is None:
                self.halted.pop(partition, None)
            elif partition not in self.halted:
                self.halted[partition] = f"{entry}: halted by another projector"

    def _live_partitions(self) -> list[int]:
        return [p for p in range(self.keys.partitions) if p not in self.halted]

    def _partition_of(self, stream: str) -> int:
        for partition in range(self.keys.partitions):
            if self.keys.log(partition) == stream:
                return partition
        raise ValueError(f"unknown stream {stream}")


class _DryRun:
    """Accepts any pipeline call: lets ``auth.apply`` validate an event before the MULTI."""

    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: None
