"""The live audit feed (``keyledger events tail``): one order over every partition, and
a cursor per line to resume from.

**Order.** Entries are printed in the order of their stream ids, ties broken by
partition number: the order a replay of the whole log gives, so a feed started
at any time prints what an earlier one printed, in the same order. An entry is
only printed once its id is below the *watermark*, the Redis server's time
(read just before the partitions) in milliseconds: every entry with a smaller
id was already appended and was seen by the reads that followed, so nothing can
later slip in before it. Printing lags the append by a millisecond or so.

**Cursor.** Each line carries the position of every partition after it (the id
of the last entry passed in each), a *vector*, not the single id of the line's
entry. Resuming reads each partition strictly after its own position, so there
is never a gap and never a repeat, even when the watermark's assumption fails:
Redis stream ids are per stream, and a server clock stepped back (or, on a
cluster, partitions on servers with different clocks) can give an entry of one
partition a smaller id than one already printed from another. Such an entry is
printed late (out of id order) rather than lost; a single id as cursor would
skip it on resume. The vector is written compactly: ``c1:<base>:<p0>.<p1>...``,
each partition as the difference in milliseconds below ``base`` (hex), with
``-<seq>`` (hex) when the sequence is not 0, and empty for "before the first
entry".

Nothing here talks to Redis: ``keyledger.adapters.logtail`` reads the log.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

StreamId = tuple[int, int]
ORIGIN: StreamId = (0, 0)
MAX_PART = 2**64 - 1
CURSOR = re.compile(r"\Ac1:([0-9a-f]{1,16}):([0-9a-f.\-]*)\Z")
PART = re.compile(r"\A([0-9a-f]{1,16})(?:-([0-9a-f]{1,16}))?\Z")


class BadCursor(ValueError):
    """Text that is not a cursor of this log."""


def format_id(position: StreamId) -> str:
    return f"{position[0]}-{position[1]}"


def encode(positions: list[StreamId]) -> str:
    base = max((ms for ms, _ in positions), default=0)
    parts = []
    for ms, seq in positions:
        if (ms, seq) == ORIGIN:
            parts.append("")
        else:
            parts.append(f"{base - ms:x}" + (f"-{seq:x}" if seq else ""))
    return f"c1:{base:x}:" + ".".join(parts)


def decode(text: str, partitions: int) -> list[StreamId]:
    """The positions a cursor printed by ``encode`` holds, for a log of ``partitions``."""
    match = CURSOR.fullmatch(text.strip())
    if match is None:
        raise BadCursor(f"{text[:80]!r} is not a cursor printed by 'keyledger events tail'")
    base = int(match[1], 16)
    parts = match[2].split(".")
    if len(parts) != partitions:
        raise BadCursor(
            f"the cursor holds {len(parts)} partitions, the log has {partitions} "
            "(KEYLEDGER_PARTITIONS)"
        )
    positions: list[StreamId] = []
    for part in parts:
        if part == "":
            positions.append(ORIGIN)
            continue
        found = PART.fullmatch(part)
        if found is None or int(found[1], 16) > base:
            raise BadCursor(f"the cursor has a malformed partition position {part[:40]!r}")
        positions.append((base - int(found[1], 16), int(found[2] or "0", 16)))
    if base > MAX_PART or any(seq > MAX_PART for _, seq in positions):
        raise BadCursor("the cursor is out of range")
    return positions


@dataclass(frozen=True)
class Entry:
    partition: int
    entry_id: str
    position: StreamId
    fields: dict[str, str]


@dataclass
class Merge:
    """Merges what is read from the partitions into the feed's order.

    ``positions`` are the last entries passed per partition (the cursor); only
    the partitions in ``read`` are read (``--account`` reads one). ``add`` takes
    each read's entries and, when the read reached the partition's end, the
    server time taken just before it; ``ready`` yields, in order, the entries
    that nothing can precede any more.
    """

    positions: list[StreamId]
    read: frozenset[int]
    buffers: dict[int, deque[Entry]] = field(default_factory=dict)
    read_to: list[StreamId] = field(default_factory=list)
    #: Per partition: the server time (ms) of the last read that reached its end.
    end_seen: dict[int, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.read_to = list(self.positions)
        self.buffers = {p: deque() for p in self.read}
        self.end_seen = {p: None for p in self.read}

    def add(
        self, partition: int, entries: list[tuple[str, dict[str, str]]], end_at: int | None
    ) -> None:
        """A read of ``partition``; ``end_at``: it reached the end, at that server time."""
        buffer = self.buffers[partition]
        for entry_id, fields in entries:
            ms, _, seq = entry_id.partition("-")
            position = (int(ms), int(seq or 0))
            if position <= self.read_to[partition]:
                continue  # read twice (a retried read): never buffer it again
            buffer.append(Entry(partition, entry_id, position, fields))
            self.read_to[partition] = position
        self.end_seen[partition] = end_at

    def _bound(self, watermark_ms: int) -> int | None:
        """Below which time the smallest buffered head may be yielded (None: read more)."""
        bound = watermark_ms
        for partition, buffer in self.buffers.items():
            if not buffer:
                seen = self.end_seen[partition]
                if seen is None:
                    return None  # more may come from it, perhaps older than the others' heads
                bound = min(bound, seen)
        return bound

    def ready(self, watermark_ms: int) -> Iterator[Entry]:
        """Entries with an id below the watermark, in (id, partition) order, as long as
        no partition can still hold an unread entry that would come before them."""
        while True:
            bound = self._bound(watermark_ms)
            heads = [(b[0].position, p) for p, b in self.buffers.items() if b]
            if bound is None or not heads:
                return
            position, partition = min(heads)
            if position[0] >= bound:
                return
            entry = self.buffers[partition].popleft()
            self.positions[partition] = entry.position
            yield entry

    def needs_reading(self) -> list[int]:
        """Partitions to read next: those with nothing buffered (bounded memory)."""
        return [p for p, buffer in self.buffers.items() if not buffer]

    def caught_up(self, watermark_ms: int) -> bool:
        """Nothing below the watermark is left to read or to yield."""
        for partition, buffer in self.buffers.items():
            if buffer:
                if buffer[0].position[0] < watermark_ms:
                    return False
            elif self.end_seen[partition] is None:
                return False
        return True

    @property
    def waiting(self) -> bool:
        """Entries are buffered, newer than the last watermark."""
        return any(self.buffers.values())

    def cursor(self) -> str:
        return encode(self.positions)
