"""Projection writes folded in memory, then written once per key.

The projections (``workers/projections``) only write, with HSET, DEL, SADD, SREM,
XADD and ZADD. Applied to a keyspace that starts empty, their effect can therefore
be computed without Redis, by Redis's own rules: fields keep the position of their
first HSET, a set left empty disappears, a stream refuses an entry id at or below
its last one. ``MemoryFold`` stands in for the pipeline they are given; ``flush``
then writes every hash and set changed since the last flush as a whole (DEL,
then one HSET or SADD) and appends the new stream entries and sorted-set members.
A rebuild thereby writes each authentication record once instead of once per event.

Sorted sets are folded as appends only, like streams: each ZADD must score its
members above every member the key holds (a FoldError otherwise), and members must
be new to the key. The system-log indexes keep that rule by construction: their
members are the entry ids the same apply just XADDed (which Redis, and the fold,
refuse twice) and their scores are versions, which only grow.

Hashes and sets stay in memory (a partition's authentication lookup); stream
entries and sorted-set members only until they are flushed (the system log can be
long). New stream entries and members are written by small scripts, a few hundred
per call (one command instead of one per entry: about 2.5 times faster, and each
call still blocks Redis for only a few milliseconds). Every key a fold writes must
share one hash slot, as a partition's keys do.
"""

from __future__ import annotations

from collections.abc import Mapping
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
ZADD_SCRIPT = """
-- KEYS: sorted sets; ARGV per member: index of its key in KEYS, score, member
for i = 1, #ARGV, 3 do
  redis.call('ZADD', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
end
return 1
"""
APPEND_CHUNK = 500  # entries (or members) per script call


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


class MemoryFold:
    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}
        self.sets: dict[str, dict[str, None]] = {}  # insertion-ordered members
        self.streams: dict[str, tuple[StreamId, int]] = {}  # last id, length
        self.zsets: dict[str, tuple[float, str, int]] = {}  # last score, its member, size
        #: every key any write named, existing or not (the live keys a switch replaces)
        self.touched: set[str] = set()
        self._changed: dict[str, None] = {}
        self._appended: list[tuple[str, list[str], str]] = []  # stream, fields, id
        self._scored: list[tuple[str, float, str]] = []  # sorted set, score, member
        self._written: set[str] = set()

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

    def delete(self, *names: str) -> None:
        for name in names:
            self.hashes.pop(name, None)
            self.sets.pop(name, None)
            if self.streams.pop(name, None) is not None:
                self._appended = [a for a in self._appended if a[0] != name]
            if self.zsets.pop(name, None) is not None:
                self._scored = [a for a in self._scored if a[0] != name]
            self._change(name)

    def zadd(self, name: str, mapping: Mapping[str, float], **options: Any) -> int:
        if options and any(v not in (None, False) for v in options.values()):
            raise FoldError("only a plain ZADD can be folded")
        if not mapping:
            raise FoldError("ZADD with no member")
        known = self.zsets.get(name)
        if known is None and (name in self.hashes or name in self.sets or name in self.streams):
            self._expect(name, "zset")
        last, size = (known[0], known[2]) if known is not None else (None, 0)
        pairs = mapping.items() if len(mapping) == 1 else sorted(mapping.items(), key=_score_of)
        for member, value in pairs:
            score = float(value)
            if last is not None and not score > last:
                raise FoldError(f"ZADD {name}: score {value} is not above the key's last one")
            last, size = score, size + 1
            self._scored.append((name, score, _text(member)))
        self.zsets[name] = (score, self._scored[-1][2], size)
        self.touched.add(name)
        return len(mapping)

    def xadd(self, name: str, fields: Mapping[str, Scalar], id: str = "*", **options: Any) -> str:
        if id == "*" or (options and any(v not in (None, False) for v in options.values())):
            raise FoldError("only XADD with an explicit id and no trimming can be folded")
        if not fields:
            raise FoldError("XADD with no field")
        self._expect(name, "stream")
        position = stream_id(id)
        known = self.streams.get(name)
        if known is not None and position <= known[0]:
            raise FoldError(f"XADD {name} {id}: the id is at or below the stream's last one")
        self.streams[name] = (position, 1 if known is None else known[1] + 1)
        self._appended.append((name, [_text(t) for pair in fields.items() for t in pair], id))
        self.touched.add(name)
        return id

    # -- what the fold holds ----------------------------------------------------------------
    def existing(self) -> set[str]:
        """The keys that exist now, had every write gone to Redis."""
        return {*self.hashes, *self.sets, *self.streams, *self.zsets}

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
        for start in range(0, len(self._scored), APPEND_CHUNK):
            zsets: dict[str, int] = {}
            args = []
            for name, score, member in self._scored[start : start + APPEND_CHUNK]:
                args += [zsets.setdefault(name, len(zsets) + 1), _score(score), member]
            pipe.eval(ZADD_SCRIPT, len(zsets), *zsets, *args)
            self._written.update(zsets)
            commands += 1
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
            if name in self.zsets
            else kind
        )
        if held != kind:
            raise FoldError(f"WRONGTYPE: {name} holds a {held}, not a {kind}")
