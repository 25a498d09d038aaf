"""Projection writes folded in memory, then written once per key.

The projections (``workers/projections``) only write, with HSET, HDEL, DEL, SADD,
SREM, ZADD, ZREM and XADD. Applied to a keyspace that starts empty, their effect
can therefore be computed without Redis, by Redis's own rules: fields keep the
position of their first HSET, a hash, set or sorted set left empty disappears, a
stream refuses an entry id at or below its last one. ``MemoryFold`` stands in for
the pipeline they are given; ``flush``
then writes every hash and set changed since the last flush as a whole (DEL,
then one HSET or SADD) and appends the new stream entries and sorted-set members.
A rebuild thereby writes each authentication record once instead of once per event.

Sorted sets come in two kinds. Small ones (the expiry index of a partition) are
held whole in memory, like hashes, and may be changed in any way. Those the fold
is told are *streamed* (``streamed(name)``: the system-log indexes, which can be as
long as the log) are folded as appends only, like streams: each ZADD must score
its members above every member the key holds (a FoldError otherwise), and members
must be new to the key; ZREM is refused. The system-log indexes keep that rule by
construction: their members are the entry ids the same apply just XADDed (which
Redis, and the fold, refuse twice) and their scores are versions, which only grow.

Hashes and sets stay in memory (a partition's authentication lookup); stream
entries and sorted-set members only until they are flushed (the system log can be
long). New stream entries are written by a small script, 500 per call (one command
instead of one per entry: about 2.5 times faster, and each call still blocks Redis
for only a few milliseconds); new members by one ZADD per sorted set and flush, up
to 500 members each (one script call per member cost Redis about twice as much).
Every key a fold writes must share one hash slot, as a partition's keys do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from keyledger.adapters.redis_client import stream_id

StreamId = tuple[int, int]
Scalar = str | int | float

APPEND_SCRIPT = """
-- KEYS: streams; ARGV per entry: index of its stream in KEYS, id, field count, fields
local i = 1
while i <= #ARGV do
  local width = tonumber(ARGV[i + 2])
  redis.call('XADD', KEYS[tonumber(ARGV[i])], ARGV[i + 1], unpack(ARGV, i + 3, i + 2 + 2 * width))
  i = i + 3 + 2 * width
end
return 1
"""
APPEND_CHUNK = 500  # entries per script call, members per ZADD


class FoldError(ValueError):
    """A write Redis itself would refuse (wrong type, stale stream id, nothing to set)."""


def _text(value: object) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FoldError(f"cannot store a {type(value).__name__} in Redis")
    return str(value)


def _score_of(pair: tuple[str, float]) -> float:
    return pair[1]


def _score(score: float) -> str:
    """A score as Redis reads it back: integral scores (versions) without a fraction."""
    return str(int(score)) if score.is_integer() else repr(score)


def _never(_name: str) -> bool:
    return False


class MemoryFold:
    def __init__(self, streamed: Callable[[str], bool] = _never) -> None:
        #: Which sorted sets are folded as appends only (and never held whole).
        self._is_streamed = streamed
        self._streamed: dict[str, bool] = {}  # asked once per key: a rebuild asks per event
        self.hashes: dict[str, dict[str, str]] = {}
        self.sets: dict[str, dict[str, None]] = {}  # insertion-ordered members
        self.zsets: dict[str, dict[str, float]] = {}  # held whole: member -> score
        self.streams: dict[str, tuple[StreamId, int]] = {}  # last id, length
        #: streamed sorted sets: last score, its member, size
        self.indexes: dict[str, tuple[float, str, int]] = {}
        #: every key any write named, existing or not (the live keys a switch replaces)
        self.touched: set[str] = set()
        self._changed: dict[str, None] = {}
        self._appended: list[tuple[str, list[str], str]] = []  # stream, fields, id
        self._scored: list[tuple[str, float, str]] = []  # sorted set, score, member
        self._written: set[str] = set()

    def streamed(self, name: str) -> bool:
        known = self._streamed.get(name)
        if known is None:
            known = self._streamed[name] = self._is_streamed(name)
        return known

    # -- the pipeline calls the projections make ------------------------------------------
    def hset(
        self,
        name: str,
        key: str | None = None,
        value: Scalar | None = None,
        mapping: Mapping[str, Scalar] | None = None,
        items: list[Scalar] | None = None,
    ) -> None:
        pairs: list[tuple[object, object]] = list(mapping.items()) if mapping else []
        if key is not None:
            pairs.insert(0, (key, value))
        if items:
            pairs += list(zip(items[::2], items[1::2], strict=True))
        if not pairs:
            raise FoldError("HSET with no field")
        self._expect(name, "hash")
        fields = self.hashes.setdefault(name, {})
        for field, text in pairs:
            fields[_text(field)] = _text(text)
        self._change(name)

    def sadd(self, name: str, *values: Scalar) -> None:
        if not values:
            raise FoldError("SADD with no member")
        self._expect(name, "set")
        self.sets.setdefault(name, {}).update(dict.fromkeys(_text(v) for v in values))
        self._change(name)

    def srem(self, name: str, *values: Scalar) -> None:
        if not values:
            raise FoldError("SREM with no member")
        self._expect(name, "set")
        members = self.sets.get(name)
        if members is not None:
            for value in values:
                members.pop(_text(value), None)
            if not members:
                del self.sets[name]
        self._change(name)

    def hdel(self, name: str, *keys: str) -> None:
        if not keys:
            raise FoldError("HDEL with no field")
        self._expect(name, "hash")
        fields = self.hashes.get(name)
        if fields is not None:
            for key in keys:
                fields.pop(_text(key), None)
            if not fields:
                del self.hashes[name]
        self._change(name)

    def zrem(self, name: str, *values: Scalar) -> None:
        if not values:
            raise FoldError("ZREM with no member")
        if self.streamed(name):
            raise FoldError(f"ZREM {name}: members are only ever appended to it")
        self._expect(name, "zset")
        members = self.zsets.get(name)
        if members is not None:
            for value in values:
                members.pop(_text(value), None)
            if not members:
                del self.zsets[name]
        self._change(name)

    def delete(self, *names: str) -> None:
        for name in names:
            self.hashes.pop(name, None)
            self.sets.pop(name, None)
            if self.streams.pop(name, None) is not None:
                self._appended = [a for a in self._appended if a[0] != name]
            self.zsets.pop(name, None)
            if self.indexes.pop(name, None) is not None:
                self._scored = [a for a in self._scored if a[0] != name]
            self._change(name)

    def zadd(self, name: str, mapping: Mapping[str, Scalar], **options: Any) -> int:
        if not mapping or (options and any(v not in (None, False) for v in options.values())):
            raise FoldError("only ZADD with members and no options can be folded")
        streamed = self._streamed.get(name)
        if streamed is None:
            streamed = self.streamed(name)
        if streamed:
            return self._append_members(name, mapping)
        self._expect(name, "zset")
        members = self.zsets.setdefault(name, {})
        for member, score in mapping.items():
            members[_text(member)] = float(score)
        self._change(name)
        return len(mapping)

    def _append_members(self, name: str, mapping: Mapping[str, Scalar]) -> int:
        known = self.indexes.get(name)
        if known is None:
            self._expect(name, "zset")
            last, size = None, 0
        else:
            last, _, size = known
        if len(mapping) == 1:  # what the system log's apply does, once per entry and index
            ((member, value),) = mapping.items()
            pairs = [(_text(member), float(value))]
        else:
            pairs = sorted(((_text(m), float(v)) for m, v in mapping.items()), key=_score_of)
        for member, score in pairs:
            if last is not None and not score > last:
                raise FoldError(f"ZADD {name}: score {score} is not above the key's last one")
            last, size = score, size + 1
            self._scored.append((name, score, member))
        self.indexes[name] = (pairs[-1][1], pairs[-1][0], size)
        self.touched.add(name)
        return len(mapping)

    def xadd(self, name: str, fields: Mapping[str, Scalar], id: str = "*", **options: Any) -> str:
        if id == "*" or (options and any(v not in (None, False) for v in options.values())):
            raise FoldError("only XADD with an explicit id and no trimming can be folded")
        if not fields:
            raise FoldError("XADD with no field")
        position = stream_id(id)
        known = self.streams.get(name)
        if known is None:
            self._expect(name, "stream")  # a key held by one kind is in no other's dict
        elif position <= known[0]:
            raise FoldError(f"XADD {name} {id}: the id is at or below the stream's last one")
        self.streams[name] = (position, 1 if known is None else known[1] + 1)
        self._appended.append((name, [_text(t) for pair in fields.items() for t in pair], id))
        self.touched.add(name)
        return id

    # -- what the fold holds ----------------------------------------------------------------
    def existing(self) -> set[str]:
        """The keys that exist now, had every write gone to Redis."""
        return {*self.hashes, *self.sets, *self.zsets, *self.streams, *self.indexes}

    def flush(self, pipe: Any) -> int:
        """Queue on ``pipe`` the writes that make Redis hold what the fold holds; how many."""
        commands = 0
        for name in self._changed:
            if name in self._written:
                pipe.delete(name)
                commands += 1
            if name in self.hashes:
                pipe.hset(name, mapping=self.hashes[name])
            elif name in self.sets:
                pipe.sadd(name, *self.sets[name])
            elif name in self.zsets:
                pipe.zadd(name, self.zsets[name])
            else:
                continue
            self._written.add(name)
            commands += 1
        for start in range(0, len(self._appended), APPEND_CHUNK):
            streams: dict[str, int] = {}
            args: list[str | int] = []
            for name, fields, entry_id in self._appended[start : start + APPEND_CHUNK]:
                index = streams.setdefault(name, len(streams) + 1)
                args += [index, entry_id, len(fields) // 2, *fields]
            pipe.eval(APPEND_SCRIPT, len(streams), *streams, *args)
            self._written.update(streams)
            commands += 1
        members: dict[str, list[str]] = {}  # one ZADD per sorted set, its members in order
        for name, score, member in self._scored:
            pairs = members.get(name)
            if pairs is None:
                pairs = members[name] = []
            pairs += (_score(score), member)
        for name, pairs in members.items():
            for start in range(0, len(pairs), 2 * APPEND_CHUNK):
                pipe.execute_command("ZADD", name, *pairs[start : start + 2 * APPEND_CHUNK])
                commands += 1
        self._written.update(members)
        self._changed.clear()
        self._appended.clear()
        self._scored.clear()
        return commands

    def _change(self, name: str) -> None:
        self.touched.add(name)
        self._changed[name] = None

    def _expect(self, name: str, kind: str) -> None:
        held = (
            "hash"
            if name in self.hashes
            else "set"
            if name in self.sets
            else "stream"
            if name in self.streams
            else "zset"
            if name in self.zsets or name in self.indexes
            else kind
        )
        if held != kind:
            raise FoldError(f"WRONGTYPE: {name} holds a {held}, not a {kind}")
