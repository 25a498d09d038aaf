"""What ``keyledger status`` reports: the Redis settings, the log and the projections.

A partition's keys share one slot, so everything about a partition is read with
one pipeline on the node that serves it (``Topology.by_primary``): one round trip
per node, on a single Redis as on a cluster. An entry's age is measured on the
clock of the node that gave it its id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from keyledger.adapters.keyspace import PROJECTIONS, Keyspace
from keyledger.adapters.redis_client import as_entries, stream_id
from keyledger.adapters.topology import Topology

#: Settings keyledger needs so that nothing acknowledged is lost or evicted.
REQUIRED = {
    "appendonly": ("yes", "acknowledged changes are lost on restart unless appendonly is yes"),
    "maxmemory-policy": (
        "noeviction",
        "Redis may evict log entries or projection keys under memory pressure",
    ),
}
RECOMMENDED = {
    "appendfsync": ("always", "with appendfsync != always, a power loss can drop the last second"),
}
LAG_SCAN_LIMIT = 100_000


@dataclass
class PartitionStatus:
    partition: int
    #: The node serving the partition's slot (``host:port``).
    node: str
    log_length: int
    last_entry: str | None
    checkpoints: dict[str, str | None]
    lag: int
    pending: int
    halted: dict[str, str] | None
    dead_letters: int


@dataclass
class Status:
    redis_version: str
    warnings: list[str] = field(default_factory=list)
    partitions: list[PartitionStatus] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not any(p.halted for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "redisVersion": self.redis_version,
            "warnings": self.warnings,
            "partitions": [
                {
                    "partition": p.partition,
                    "node": p.node,
                    "logLength": p.log_length,
                    "lastEntry": p.last_entry,
                    "checkpoints": p.checkpoints,
                    "lag": p.lag,
                    "pending": p.pending,
                    "halted": p.halted,
                    "deadLetters": p.dead_letters,
                }
                for p in self.partitions
            ],
        }


def settings_warnings(topology: Topology) -> list[str]:
    """What each node (every primary and replica of a cluster) is set to that keyledger
    cannot rely on."""
    warnings = []
    for node in topology.nodes():
        where = f"{node.name} ({node.role}): " if topology.clustered else ""
        for name, (wanted, why) in {**REQUIRED, **RECOMMENDED}.items():
            try:
                value = node.client.config_get(name).get(name)
            except redis.ResponseError:
                warnings.append(
                    f"{where}cannot read {name} (CONFIG disabled?): make sure it is {wanted}"
                )
                continue
            if value != wanted:
                warnings.append(f"{where}{name} is {value!r}, keyledger needs {wanted!r}: {why}")
    return warnings


def partition_status(topology: Topology, keys: Keyspace, partition: int) -> PartitionStatus:
    log_key = keys.log(partition)
    return topology.on_primary(log_key, lambda node: _partition_status(node, keys, partition))


def _partition_status(node: Any, keys: Keyspace, partition: int) -> PartitionStatus:
    client, log_key = node.client, keys.log(partition)
    pipe = client.pipeline(transaction=False)
    pipe.xlen(log_key)
    pipe.xrevrange(log_key, count=1)
    pipe.mget([keys.checkpoint(name, partition) for name in PROJECTIONS])
    pipe.hgetall(keys.halted(partition))
    pipe.xlen(keys.dead_letters(partition))
    length, last, checkpoints, halted, dead = pipe.execute()
    positions = dict(zip(PROJECTIONS, checkpoints, strict=True))
    behind = min((stream_id(c) if c else (0, 0)) for c in checkpoints)
    low = "-" if behind == (0, 0) else f"({behind[0]}-{behind[1]}"
    lag = len(as_entries(client.xrange(log_key, min=low, count=LAG_SCAN_LIMIT)))
    try:
        pending = int(client.xpending(log_key, keys.consumer_group())["pending"])
    except redis.ResponseError:
        pending = 0  # no consumer group yet: no projector ever ran
    entries = as_entries(last)
    return PartitionStatus(
        partition=partition,
        node=node.name,
        log_length=int(length),
        last_entry=entries[0][0] if entries else None,
        checkpoints=positions,
        lag=lag,
        pending=pending,
        halted=halted or None,
        dead_letters=int(dead),
    )


def replica_warnings(topology: Topology, min_replicas: int) -> list[str]:
    """Primaries with fewer connected replicas than every change must reach: each of
    their partitions refuses every change (503) until a replica is back."""
    warnings = []
    for node in topology.nodes():
        if node.role != "primary" or not min_replicas:
            continue
        connected = int(node.client.info("replication").get("connected_slaves", 0))
        if connected < min_replicas:
            warnings.append(
                f"{node.name} has {connected} connected replicas but KEYLEDGER_MIN_REPLICAS="
                f"{min_replicas}: every change to its partitions is refused (503) until "
                "enough replicas are back"
            )
    return warnings


def status(topology: Topology, keys: Keyspace, min_replicas: int = 0) -> Status:
    info = topology.nodes()[0].client.info("server")
    result = Status(redis_version=str(info.get("redis_version", "?")))
    result.warnings = settings_warnings(topology) + replica_warnings(topology, min_replicas)
    result.partitions = [partition_status(topology, keys, p) for p in range(keys.partitions)]
    for p in result.partitions:
        if p.halted:
            result.warnings.append(
                f"partition {p.partition} HALTED at entry {p.halted.get('entry')}: "
                f"{p.halted.get('error')} (see 'keyledger deadletter list')"
            )
    return result


#: Counts a partition's unapplied entries without sending them over the wire.
COUNT_AFTER_SCRIPT = """
-- KEYS[1]: a partition's log; ARGV[1]: exclusive start ('-' or '(id'); ARGV[2]: cap
return #redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
"""


@dataclass(frozen=True)
class PartitionLag:
    """How far the projections of one partition are behind its log, as metrics show it."""

    partition: int
    #: Age of the oldest log entry not yet applied, on the Redis clock (0: none).
    age_ms: int
    #: Unapplied entries, counted up to the cap given to ``log_lag`` (None: not counted).
    entries: int | None
    halted: bool
    dead_letters: int


def log_lag(topology: Topology, keys: Keyspace, count_cap: int = 0) -> list[PartitionLag]:
    """Every partition's lag in two round trips per node (plus one script call per
    partition when ``count_cap`` asks for the number of unapplied entries).

    The age of the oldest unapplied entry is the server's time minus the time in
    that entry's id, both from the node that serves the partition, so web hosts'
    clocks do not matter.
    """
    partitions = {p: keys.log(p) for p in range(keys.partitions)}

    def read() -> list[PartitionLag]:
        lags = []
        for node, group in topology.by_primary(partitions):
            lags += _node_lag(node.client, keys, group, count_cap)
        return sorted(lags, key=lambda lag: lag.partition)

    return topology.routed(read)


def _node_lag(
    client: redis.Redis, keys: Keyspace, partitions: list[int], count_cap: int
) -> list[PartitionLag]:
    pipe = client.pipeline(transaction=False)
    pipe.time()
    for partition in partitions:
        pipe.mget([keys.checkpoint(name, partition) for name in PROJECTIONS])
        pipe.exists(keys.halted(partition))
        pipe.xlen(keys.dead_letters(partition))
    replies = pipe.execute()
    seconds, micros = replies[0]
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    starts, states = [], []
    for index, _partition in enumerate(partitions):
        checkpoints, halted, dead = replies[1 + 3 * index : 4 + 3 * index]
        behind = min((stream_id(c) if c else (0, 0)) for c in checkpoints)
        starts.append("-" if behind == (0, 0) else f"({behind[0]}-{behind[1]}")
        states.append((bool(halted), int(dead)))
    counter = client.register_script(COUNT_AFTER_SCRIPT)
    pipe = client.pipeline(transaction=False)
    for partition, start in zip(partitions, starts, strict=True):
        pipe.xrange(keys.log(partition), min=start, count=1)
        if count_cap:
            counter(keys=[keys.log(partition)], args=[start, count_cap], client=pipe)
    answers = iter(pipe.execute())
    lags = []
    for partition, (halted, dead) in zip(partitions, states, strict=True):
        oldest = as_entries(next(answers))
        entries = int(next(answers)) if count_cap else None
        age = max(0, now_ms - stream_id(oldest[0][0])[0]) if oldest else 0
        lags.append(PartitionLag(partition, age, entries, halted, dead))
    return lags
