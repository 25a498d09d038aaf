"""Reads every partition's log for the audit feed (``keyledger.feed``): the server's
clock and the entries after given positions, and a blocking wait for new ones."""

from __future__ import annotations

from typing import Any

import redis

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import Entries, as_entries, as_streams, store_call

StreamId = tuple[int, int]


class LogTail:
    """One client whose socket timeout outlasts its blocking reads (``block_ms``)."""

    def __init__(self, client: redis.Redis, keyspace: Keyspace):
        self.client = client
        self.keys = keyspace

    @store_call
    def server_ms(self) -> int:
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    @store_call
    def read(self, after: dict[int, StreamId], count: int) -> tuple[int, dict[int, Entries]]:
        """The server's time, then up to ``count`` entries of each partition after its
        position, in one round trip: every entry with an id below that time (in ms)
        was appended before the read, so the read saw it."""
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        for partition, position in after.items():
            pipe.xrange(self.keys.log(partition), min=_after(position), count=count)
        replies = pipe.execute()
        seconds, micros = replies[0]
        entries = {p: as_entries(reply) for p, reply in zip(after, replies[1:], strict=True)}
        return int(seconds) * 1000 + int(micros) // 1000, entries

    @store_call
    def last_ids(self, partitions: list[int]) -> dict[int, StreamId]:
        """Each partition's newest entry (``--from now``)."""
        pipe = self.client.pipeline(transaction=False)
        for partition in partitions:
            pipe.xrevrange(self.keys.log(partition), count=1)
        found: dict[int, StreamId] = {}
        for partition, reply in zip(partitions, pipe.execute(), strict=True):
            entries = as_entries(reply)
            found[partition] = _parse(entries[0][0]) if entries else (0, 0)
        return found

    @store_call
    def wait(self, after: dict[int, StreamId], block_ms: int) -> bool:
        """Block until some partition has an entry after its position (or ``block_ms``)."""
        streams: dict[Any, Any] = {
            self.keys.log(p): f"{position[0]}-{position[1]}" for p, position in after.items()
        }
        return bool(as_streams(self.client.xread(streams, count=1, block=block_ms)))


def _after(position: StreamId) -> str:
    return "-" if position == (0, 0) else f"({position[0]}-{position[1]}"


def _parse(entry_id: str) -> StreamId:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
