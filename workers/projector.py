"""The projector: consumes every log partition with a consumer group and keeps the
authentication lookup and the system log up to date.

Each batch is applied with its checkpoint and its ``XACK`` in one MULTI/EXEC,
under WATCH of the checkpoints; entries at or below the checkpoint are skipped,
so a replayed entry changes nothing. At start-up the consumer first re-reads its
own pending entries. An entry that cannot be decoded or applied halts its
partition (skipping it could skip a revocation): it is logged loudly and left
pending.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import redis

from app.adapters.keyspace import PROJECTIONS, Keyspace
from app.adapters.redis_client import Entries, as_streams, is_busygroup, stream_id
from app.domain.events import Event
from app.domain.mapper import from_record
from workers.projections import auth, syslog

log = logging.getLogger("keyledger.projector")


class Projector:
    def __init__(
        self,
        client: redis.Redis,
        keyspace: Keyspace,
        consumer: str | None = None,
        batch: int = 500,
        block_ms: int = 1000,
    ):
        self.client = client
        self.keys = keyspace
        self.group = keyspace.consumer_group()
        self.consumer = consumer or f"{socket.gethostname()}"
        self.batch = batch
        self.block_ms = block_ms
        self.halted: dict[int, str] = {}
        self.applied = 0

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
        """Project until ``stop`` is set; survive Redis outages by retrying."""
        ready = False
        while not stop.is_set():
            try:
                if not ready:
                    self.setup()
                    self.drain_pending()
                    ready = True
                    log.info(
                        "projector %s consuming %d partitions", self.consumer, self.keys.partitions
                    )
                self.step()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                ready = False
                log.warning("redis unavailable (%s); retrying in 1 s", type(exc).__name__)
                stop.wait(1.0)

    def drain_pending(self) -> None:
        """Re-read entries delivered to this consumer before a crash, then new ones."""
        for partition in self._live_partitions():
            while True:
                streams: dict[Any, Any] = {self.keys.log(partition): "0"}
                reply = as_streams(
                    self.client.xreadgroup(self.group, self.consumer, streams, count=self.batch)
                )
                entries = reply[0][1] if reply else []
                if not entries:
                    break
                self.apply(partition, entries)
                if partition in self.halted:
                    break

    def step(self) -> int:
        streams: dict[Any, Any] = {self.keys.log(p): ">" for p in self._live_partitions()}
        if not streams:
            time.sleep(self.block_ms / 1000)
            return 0
        reply = as_streams(
            self.client.xreadgroup(
                self.group, self.consumer, streams, count=self.batch, block=self.block_ms
            )
        )
        done = 0
        for stream, entries in reply:
            done += self.apply(self._partition_of(stream), entries)
        return done

    def _live_partitions(self) -> list[int]:
        return [p for p in range(self.keys.partitions) if p not in self.halted]

    def _partition_of(self, stream: str) -> int:
        for partition in range(self.keys.partitions):
            if self.keys.log(partition) == stream:
                return partition
        raise ValueError(f"unknown stream {stream}")

    def apply(self, partition: int, entries: Entries) -> int:
        """Apply entries of one partition atomically with checkpoint and XACK."""
        checkpoints = [self.keys.checkpoint(name, partition) for name in PROJECTIONS]
        log_key = self.keys.log(partition)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(*checkpoints)  # type: ignore[no-untyped-call]
                    done = pipe.mget(checkpoints)
                    position = min((stream_id(str(c)) if c else (0, 0)) for c in done)
                    decoded, acked = self._decode(partition, entries, position)
                    pipe.multi()
                    for entry_id, event in decoded:
                        auth.apply(pipe, self.keys, event)
                        syslog.apply(pipe, self.keys, event, entry_id)
                    if decoded:
                        for key in checkpoints:
                            pipe.set(key, decoded[-1][0])
                    if acked:
                        pipe.xack(log_key, self.group, *acked)
                    pipe.execute()
                    self.applied += len(decoded)
                    return len(decoded)
                except redis.WatchError:
                    continue

    def _decode(
        self, partition: int, entries: Entries, position: tuple[int, int]
    ) -> tuple[list[tuple[str, Event]], list[str]]:
        decoded: list[tuple[str, Event]] = []
        acked: list[str] = []
        for entry_id, fields in entries:
            if stream_id(entry_id) <= position:
                acked.append(entry_id)  # already applied: acknowledge, change nothing
                continue
            try:
                if not fields:
                    raise ValueError("entry has no fields (deleted from the log?)")
                event = from_record(fields)
                auth.apply(_DryRun(), self.keys, event)
            except Exception as exc:
                self.halted[partition] = f"{entry_id}: {exc}"
                log.critical(
                    "HALTED partition %d at entry %s: %s. Authentication data for its "
                    "accounts is frozen until this is resolved.",
                    partition,
                    entry_id,
                    exc,
                )
                break
            decoded.append((entry_id, event))
            acked.append(entry_id)
        return decoded, acked


class _DryRun:
    """Accepts any pipeline call: lets ``auth.apply`` validate an event before the MULTI."""

    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: None
