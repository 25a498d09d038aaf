"""Reads every partition's log for the audit feed (``keyledger.feed``): the server's
clock and the entries after given positions, and a blocking wait for new ones.

On a Redis Cluster the partitions are read with one pipeline per node, and the
clock is the earliest of those nodes' clocks (an entry's id comes from its own
node's clock, so every entry below that time was appended before the read); the
wait is the append's announcement (``adapters.doorbell``), since a blocking read
cannot span slots.
"""

from __future__ import annotations

from typing import Any

from keyledger.adapters.doorbell import Doorbell
from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import Entries, as_entries, as_streams, store_call
from keyledger.adapters.topology import Client, Topology

StreamId = tuple[int, int]


class LogTail:
    """One client whose socket timeout outlasts its blocking reads (``block_ms``)."""

    def __init__(self, client: Client, keyspace: Keyspace, topology: Topology | None = None):
        self.client = client
        self.keys = keyspace
        self.topology = topology or Topology(client)
        self.doorbell = Doorbell(self.topology, keyspace)

    @store_call
    def server_ms(self) -> int:
        return self.read({}, 1)[0]

    @store_call
    def read(self, after: dict[int, StreamId], count: int) -> tuple[int, dict[int, Entries]]:
        """The server's time, then up to ``count`` entries of each partition after its
        position, in one round trip per node: every entry with an id below that time
        (in ms) was appended before the read, so the read saw it."""

        def read_all() -> tuple[int, dict[int, Entries]]:
            groups = self.topology.by_primary({p: self.keys.log(p) for p in after})
            if not groups:  # no partition asked for: just a clock
                groups = [(self.topology.primary(self.keys.log(0)), [])]
            clocks, entries = [], {}
            for node, partitions in groups:
                pipe = node.client.pipeline(transaction=False)
                pipe.time()
                for partition in partitions:
                    pipe.xrange(self.keys.log(partition), min=_after(after[partition]), count=count)
                replies = pipe.execute()
                seconds, micros = replies[0]
                clocks.append(int(seconds) * 1000 + int(micros) // 1000)
                for partition, reply in zip(partitions, replies[1:], strict=True):
                    entries[partition] = as_entries(reply)
            return min(clocks), {p: entries[p] for p in after}

        return self.topology.routed(read_all)

    @store_call
    def last_ids(self, partitions: list[int]) -> dict[int, StreamId]:
        """Each partition's newest entry (``--from now``)."""

        def read_all() -> dict[int, StreamId]:
            found: dict[int, StreamId] = {}
            for node, group in self.topology.by_primary({p: self.keys.log(p) for p in partitions}):
                pipe = node.client.pipeline(transaction=False)
                for partition in group:
                    pipe.xrevrange(self.keys.log(partition), count=1)
                for partition, reply in zip(group, pipe.execute(), strict=True):
                    entries = as_entries(reply)
                    found[partition] = _parse(entries[0][0]) if entries else (0, 0)
            return found

        return self.topology.routed(read_all)

    @store_call
    def wait(self, after: dict[int, StreamId], block_ms: int) -> bool:
        """Block until some partition has an entry after its position (or ``block_ms``);
        on a cluster, until a change is announced (True: read again)."""
        if self.topology.clustered:
            return self.doorbell.wait(block_ms / 1000) != set()
        streams: dict[Any, Any] = {
            self.keys.log(p): f"{position[0]}-{position[1]}" for p, position in after.items()
        }
        return bool(as_streams(self.client.xread(streams, count=1, block=block_ms)))


def _after(position: StreamId) -> str:
    return "-" if position == (0, 0) else f"({position[0]}-{position[1]}"


def _parse(entry_id: str) -> StreamId:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
