"""Projection rebuilds: a fresh generation replayed from the log, checked, switched to.

For each partition and projection:

1. **Replay** the partition's log, up to the live checkpoint of the projection,
   through the projector's own pure apply functions into a shadow keyspace
   (``Keyspace.shadow``: the same key names and hash tags under another
   namespace). The writes are folded in memory (``MemoryFold``) and written once
   per key, with non-transactional pipelines, with the shadow's own checkpoint.
2. **Check** it: the last entry replayed is the live checkpoint and the shadow's;
   Redis holds exactly the keys and values the fold holds; every authentication
   record has the fields a lookup needs.
3. **Switch**: catch the shadow up to the live checkpoint (the projector keeps
   running), then, in one script and only if that checkpoint has not moved,
   unlink the projection's live keys of the partition, rename every shadow key
   onto its live name and tell every web process to drop its cached
   authentication records. If the checkpoint moved, catch up and try again.

On a Redis Cluster every step of a partition (replay, check, switch) runs on the
plain client of the node serving its slot (``Generation.client``, from
``Topology``): a cluster client runs neither scripts in pipelines nor MGET there.
Only the SCANs for live and shadow keys, which must visit every primary, and the
sums over partitions go through the cluster client.

A switch leaves both checkpoints as they are: the new generation is exactly at
the live checkpoint, so the projector carries on from where it was and applies
nothing twice to it (a system-log entry added twice would be refused by Redis
and fail the projector's transaction). Requests read the old generation until
the switch and the new one after it: the service never pauses.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import redis

from keyledger.adapters.ahead import ReadAhead, SentWrites
from keyledger.adapters.authcache import FLUSH
from keyledger.adapters.keyspace import PROJECTIONS, Keyspace
from keyledger.adapters.redis_client import Entries, as_entries, stream_id
from keyledger.adapters.topology import Client, Topology
from keyledger.domain.events import Event
from keyledger.domain.mapper import from_record
from keyledger.domain.network import parsed_network
from keyledger.domain.roles import ROLE_NAMES
from keyledger.workers.fold import MemoryFold
from keyledger.workers.projections import auth, syslog

log = logging.getLogger("keyledger.rebuild")

StreamId = tuple[int, int]
ORIGIN: StreamId = (0, 0)
Apply = Callable[[Any, Keyspace, Event, str], None]


def _apply_auth(pipe: Any, keys: Keyspace, event: Event, _entry_id: str) -> None:
    auth.apply(pipe, keys, event)


APPLY: dict[str, Apply] = {auth.NAME: _apply_auth, syslog.NAME: syslog.apply}
assert set(APPLY) == set(PROJECTIONS)

SWITCH_SCRIPT = """
-- KEYS: live checkpoint, shadow checkpoint, n live keys to drop, m (shadow, live) pairs
-- ARGV: expected live checkpoint ('' for none), n, m, channel ('' for none), message
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then
  return 0
end
local n, m = tonumber(ARGV[2]), tonumber(ARGV[3])
local base = 2 + n
for i = 1, m do
  if redis.call('EXISTS', KEYS[base + 2 * i - 1]) == 0 then
    return redis.error_reply('KLSWITCH shadow key missing: ' .. KEYS[base + 2 * i - 1])
  end
end
for i = 3, 2 + n do
  redis.call('UNLINK', KEYS[i])
end
for i = 1, m do
  redis.call('RENAME', KEYS[base + 2 * i - 1], KEYS[base + 2 * i])
end
redis.call('DEL', KEYS[2])
if ARGV[4] ~= '' then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return 1
"""


TAILS_SCRIPT = """
-- KEYS: streams, then sorted sets; ARGV[1]: how many streams. For each stream its length
-- and last entry id, for each sorted set its size, last member and that member's score
-- (false, a nil reply, where there is none): what the check compares with the fold.
local out, streams = {}, tonumber(ARGV[1])
for i = 1, #KEYS do
  if i <= streams then
    local last = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 1)[1]
    out[#out + 1] = redis.call('XLEN', KEYS[i])
    out[#out + 1] = last and last[1] or false
  else
    local top = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
    out[#out + 1] = redis.call('ZCARD', KEYS[i])
    out[#out + 1] = top[1] or false
    out[#out + 1] = top[2] or false
  end
end
return out
"""
TAILS_CHUNK = 1000  # streams and sorted sets per call: each call blocks Redis about 1 ms


class RebuildError(RuntimeError):
    """The rebuild stopped; the live projection of that partition is untouched."""


@dataclass
class Progress:
    done: int = 0
    total: int = 0
    phase: str = "starting"
    partition: int | None = None

    def as_meta(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "total": self.total,
            "phase": self.phase,
            "partition": self.partition,
        }


@dataclass
class Generation:
    """One projection of one partition being rebuilt."""

    projection: str
    partition: int
    live: Keyspace
    shadow: Keyspace
    target: str | None  # the live checkpoint to replay up to
    stale: set[str]  # the projection's live keys of the partition, found by SCAN
    parked: frozenset[str]  # dead-lettered entries: skipped if they still cannot be applied
    client: redis.Redis  # the node serving the partition's slot (the one Redis, if single)
    fold: MemoryFold = field(init=False)
    apply: Apply = field(init=False)  # the projection's apply function
    position: StreamId = ORIGIN

    def __post_init__(self) -> None:
        # The system log's indexes are as long as the log: folded as appends, not held.
        self.fold = MemoryFold(streamed=self.shadow.is_log_index)
        self.apply = APPLY[self.projection]

    @property
    def live_checkpoint(self) -> str:
        return self.live.checkpoint(self.projection, self.partition)

    @property
    def shadow_checkpoint(self) -> str:
        return self.shadow.checkpoint(self.projection, self.partition)


@dataclass
class Totals:
    replayed: int = 0
    caught_up: int = 0
    replay_seconds: float = 0.0
    skipped: int = 0
    switch_retries: int = 0
    keys: dict[str, int] = field(default_factory=dict)
    partitions: int = 0  # partitions rebuilt
    workers: int = 1  # processes that took part

    def as_counts(self) -> dict[str, int]:
        """The totals as integers to be summed over the processes of one rebuild."""
        return {
            "replayed": self.replayed,
            "caughtUp": self.caught_up,
            "skipped": self.skipped,
            "switchRetries": self.switch_retries,
            "partitionsDone": self.partitions,
            "replayMs": round(self.replay_seconds * 1000),
            **{f"keys:{name}": n for name, n in self.keys.items()},
        }


def summary(
    wanted: Sequence[str], partitions: int, totals: Totals, seconds: float
) -> dict[str, Any]:
    """What a rebuild job returns (JSON-safe). ``eventsPerSecond``: log entries replayed per
    second of replay, each process's replay time counted once (the processes overlap)."""
    replay = totals.replay_seconds / max(totals.workers, 1)
    return {
        "projections": list(wanted),
        "partitions": partitions,
        "replayed": totals.replayed,
        "caughtUp": totals.caught_up,
        "keys": totals.keys,
        "skipped": totals.skipped,
        "switchRetries": totals.switch_retries,
        "workers": totals.workers,
        "seconds": round(seconds, 3),
        "eventsPerSecond": round(totals.replayed / replay) if replay > 0 else None,
        "jobEventsPerSecond": round(totals.replayed / seconds) if seconds > 0 else None,
    }


class Rebuilder:
    def __init__(
        self,
        client: Client,
        keyspace: Keyspace,
        batch: int = 2000,
        on_progress: Callable[[Progress], None] | None = None,
        max_switch_attempts: int = 200,
        topology: Topology | None = None,
    ):
        self.client = client
        self.topology = topology or Topology(client)
        self.keys = keyspace
        self.batch = batch
        self.on_progress = on_progress or (lambda _progress: None)
        self.max_switch_attempts = max_switch_attempts
        self.progress = Progress()
        self.totals = Totals()
        self._switch = client.register_script(SWITCH_SCRIPT)
        self._tails = client.register_script(TAILS_SCRIPT)

    def run(self, projections: Sequence[str]) -> dict[str, Any]:
        """Rebuild ``projections`` in every partition, in this process; a JSON-safe summary."""
        started = time.monotonic()
        wanted = self.begin(projections)
        try:
            self.take_part(wanted, iter(range(self.keys.partitions)).__next__)
        except BaseException:
            self._drop_shadows(wanted)
            raise
        return self.finish(wanted, started)

    def begin(self, projections: Sequence[str]) -> list[str]:
        """Check the names, count the log, delete what a crashed rebuild left behind."""
        unknown = set(projections) - set(APPLY)
        if unknown or not projections:
            raise RebuildError(f"unknown projections {sorted(unknown)}; known: {PROJECTIONS}")
        wanted = self.wanted(projections)
        self.progress = Progress(total=self._log_length(), phase="replaying")
        self._report()
        self._drop_shadows(wanted)
        return wanted

    def wanted(self, projections: Sequence[str]) -> list[str]:
        wanted = [p for p in PROJECTIONS if p in projections]
        self.totals = Totals(keys=dict.fromkeys(wanted, 0))
        return wanted

    def take_part(self, wanted: Sequence[str], claim: Callable[[], int | None]) -> None:
        """Rebuild the partitions ``claim`` hands out (StopIteration or None: no more)."""
        live = self._live_keys()
        while True:
            try:
                partition = claim()
            except StopIteration:
                return
            if partition is None:
                return
            self.rebuild_partition(partition, wanted, live.get(partition, {}))
            self.totals.partitions += 1

    def finish(self, wanted: Sequence[str], started: float) -> dict[str, Any]:
        self.progress.phase, self.progress.partition = "done", None
        self.progress.total = self.progress.done
        self._report()
        return summary(wanted, self.keys.partitions, self.totals, time.monotonic() - started)

    def rebuild_partition(
        self, partition: int, projections: Sequence[str], live: dict[str, set[str]]
    ) -> None:
        """Rebuild ``projections`` of one partition; ``live``: their keys found by SCAN."""
        self.progress.partition = partition
        client = self.topology.primary(self.keys.log(partition)).client
        targets = client.mget([self.keys.checkpoint(p, partition) for p in projections])
        parked = frozenset(
            fields.get("entry", "")
            for _, fields in as_entries(client.xrange(self.keys.dead_letters(partition)))
        )
        generations = [
            Generation(
                projection,
                partition,
                self.keys,
                self.keys.shadow(projection),
                None if target is None else str(target),
                live.get(projection, set()),
                parked,
                client,
            )
            for projection, target in zip(projections, targets, strict=True)
        ]
        self.progress.phase = "replaying"
        began = time.monotonic()
        self.totals.replayed += self._replay(generations)
        self.totals.replay_seconds += time.monotonic() - began
        for generation in generations:
            self.progress.phase = "checking"
            self._report()
            self._check(generation)
            self.progress.phase = "switching"
            self._report()
            self._switch_to(generation)
            self.totals.keys[generation.projection] += len(generation.fold.existing())

    # -- replay ----------------------------------------------------------------------------
    def _replay(self, generations: Sequence[Generation], until: str | None = None) -> int:
        """Apply the log to each generation up to its target (or ``until``); entries read.

        Redis works while Python folds (``adapters.ahead``): the next batch of the log
        is asked for before this one is folded, and a batch's writes are sent at once,
        their replies read when the next batch's are sent. Every reply is read, and the
        first error raised, before this returns.
        """
        bounds = [(g, _position(until or g.target)) for g in generations]
        end = max(limit for _, limit in bounds)
        after = min(g.position for g in generations)
        partition, client = generations[0].partition, generations[0].client
        read, done_before = 0, self.progress.done
        if after >= end:
            return read
        with (
            ReadAhead(client, self.keys.log(partition), self.batch) as log,
            SentWrites(client) as writes,
        ):
            log.ask("-" if after == ORIGIN else _format(after))
            while True:
                entries = log.take()
                if not entries:
                    break
                after = stream_id(entries[-1][0])
                if after < end:
                    log.ask(entries[-1][0])
                with _no_cycle_collection():
                    read += self._apply_batch(bounds, end, entries)
                self.progress.done = done_before + read
                pipe = client.pipeline(transaction=False)
                for generation in generations:
                    generation.fold.flush(pipe)
                    if generation.position != ORIGIN:
                        pipe.set(generation.shadow_checkpoint, _format(generation.position))
                writes.send([args for args, _options in pipe.command_stack])
                self.progress.total = max(self.progress.total, self.progress.done)
                self._report()
                if after >= end:
                    break
        return read

    def _apply_batch(
        self, bounds: list[tuple[Generation, StreamId]], end: StreamId, entries: Entries
    ) -> int:
        """Fold ``entries`` into the generations whose range holds them; entries read."""
        first, last = stream_id(entries[0][0]), stream_id(entries[-1][0])
        if last <= end and all(g.position < first and last <= limit for g, limit in bounds):
            return self._apply_to_all([g for g, _ in bounds], entries, last)
        read = 0
        for entry_id, fields in entries:
            position = stream_id(entry_id)
            if position > end:
                break
            read += 1
            targets = [g for g, limit in bounds if g.position < position <= limit]
            if not targets:
                continue
            event = self._event(targets[0], entry_id, fields)
            for generation in targets:
                if event is not None:
                    try:
                        generation.apply(generation.fold, generation.shadow, event, entry_id)
                    except Exception as exc:
                        raise _not_applied(generation, entry_id, exc) from exc
                generation.position = position
            if event is None:
                self.totals.skipped += 1
        return read

    def _apply_to_all(self, generations: list[Generation], entries: Entries, last: StreamId) -> int:
        """``_apply_batch`` of a batch that every generation takes whole (most batches)."""
        for entry_id, fields in entries:
            event = self._event(generations[0], entry_id, fields)
            if event is None:
                self.totals.skipped += 1
                continue
            for generation in generations:
                try:
                    generation.apply(generation.fold, generation.shadow, event, entry_id)
                except Exception as exc:
                    raise _not_applied(generation, entry_id, exc) from exc
        for generation in generations:
            generation.position = last
        return len(entries)

    def _event(self, generation: Generation, entry_id: str, fields: dict[str, str]) -> Event | None:
        """The entry's event; None for an entry the projector parked and that still
        cannot be applied (an operator skipped it: the live projections lack it too)."""
        parked = entry_id in generation.parked
        try:
            if not fields:
                raise ValueError("entry has no fields (deleted from the log?)")
            event = from_record(fields)
            if parked:
                for apply in APPLY.values():  # the projector's test: every projection
                    apply(MemoryFold(), self.keys, event, entry_id)
            return event
        except Exception as exc:
            if parked:
                return None
            raise RebuildError(
                f"partition {generation.partition}: log entry {entry_id} cannot be decoded "
                f"({exc}); the live projections of this partition are untouched"
            ) from exc

    # -- check -----------------------------------------------------------------------------
    def _check(self, generation: Generation) -> None:
        """The shadow is exactly what the fold computed, at the live checkpoint, and sound."""
        name, partition, fold = generation.projection, generation.partition, generation.fold
        where = f"{name} projection, partition {partition}"
        reached = _format(generation.position) if generation.position != ORIGIN else None
        if reached != generation.target:
            raise RebuildError(
                f"{where}: the live checkpoint {generation.target} is not an entry of the log "
                f"(the replay ended at {reached})"
            )
        client = generation.client
        if client.get(generation.shadow_checkpoint) != reached:
            raise RebuildError(f"{where}: the shadow checkpoint is not {reached}")
        hashes, sets, streams = sorted(fold.hashes), sorted(fold.sets), sorted(fold.streams)
        zsets, indexes = sorted(fold.zsets), sorted(fold.indexes)
        gone = sorted(fold.touched - fold.existing())
        with client.pipeline(transaction=False) as pipe:
            for start in range(0, len(gone), 500):
                pipe.exists(*gone[start : start + 500])
            leftovers = sum(int(n) for n in pipe.execute())
        if leftovers:
            raise RebuildError(f"{where}: {leftovers} shadow keys exist that the replay deleted")
        with client.pipeline(transaction=False) as pipe:
            for key in hashes:
                pipe.hgetall(key)
            for key in sets:
                pipe.smembers(key)
            for key in zsets:
                pipe.zrange(key, 0, -1, withscores=True)
            replies = iter(pipe.execute())
        for key in hashes:
            if next(replies) != fold.hashes[key]:
                raise RebuildError(f"{where}: {key} differs from the replay")
        for key in sets:
            if next(replies) != set(fold.sets[key]):
                raise RebuildError(f"{where}: {key} differs from the replay")
        for key in zsets:
            if dict(next(replies)) != fold.zsets[key]:
                raise RebuildError(f"{where}: {key} differs from the replay")
        for start in range(0, max(len(streams), len(indexes)), TAILS_CHUNK):
            some_streams = streams[start : start + TAILS_CHUNK]
            some_indexes = indexes[start : start + TAILS_CHUNK]
            tails = iter(
                self._tails(
                    keys=[*some_streams, *some_indexes], args=[len(some_streams)], client=client
                )
            )
            for key in some_streams:
                length, last = next(tails), next(tails)
                last_id, expected_length = fold.streams[key]
                if length != expected_length or last is None or stream_id(str(last)) != last_id:
                    raise RebuildError(f"{where}: {key} differs from the replay")
            for key in some_indexes:
                size, member, score = next(tails), next(tails), next(tails)
                last_score, last_member, expected_size = fold.indexes[key]
                if (
                    size != expected_size
                    or member != last_member
                    or score is None
                    or float(score) != last_score
                ):
                    raise RebuildError(f"{where}: {key} differs from the replay")
        for key in [*hashes, *sets, *zsets]:
            problem = _unsound(generation.shadow, key, fold)
            if problem:
                raise RebuildError(f"{where}: {key} {problem}")

    # -- switch ----------------------------------------------------------------------------
    def _switch_to(self, generation: Generation) -> None:
        live, shadow, fold = generation.live, generation.shadow, generation.fold
        channel = live.invalidations() if generation.projection == auth.NAME else ""
        for _attempt in range(self.max_switch_attempts):
            value = generation.client.get(generation.live_checkpoint)
            current = None if value is None else str(value)
            at = _position(current)
            if at < generation.position:
                raise RebuildError(
                    f"{generation.projection} projection, partition {generation.partition}: "
                    f"the live checkpoint went back to {current}"
                )
            if at > generation.position:
                self.progress.phase = "catching up"
                caught = self._replay([generation], until=current)
                self.totals.caught_up += caught
                if generation.position != at:
                    raise RebuildError(
                        f"{generation.projection} projection, partition "
                        f"{generation.partition}: the live checkpoint {current} is not an "
                        "entry of the log"
                    )
                self.progress.phase = "switching"
            drop = sorted(generation.stale | {shadow.translate(k, live) for k in fold.touched})
            renames = [(k, shadow.translate(k, live)) for k in sorted(fold.existing())]
            if not drop and not renames:
                generation.client.delete(generation.shadow_checkpoint)
                return
            keys = [generation.live_checkpoint, generation.shadow_checkpoint, *drop]
            for pair in renames:
                keys += pair
            args: list[str | int] = [current or "", len(drop), len(renames)]
            args += [channel, json.dumps(FLUSH)]
            try:
                switched = self._switch(keys=keys, args=args, client=generation.client)
            except redis.ResponseError as exc:
                raise RebuildError(f"the switch was refused before any change: {exc}") from exc
            if switched == 1:
                log.info(
                    "switched the %s projection of partition %d to its rebuilt generation at %s",
                    generation.projection,
                    generation.partition,
                    current,
                )
                return
            self.totals.switch_retries += 1
        raise RebuildError(
            f"{generation.projection} projection, partition {generation.partition}: the "
            f"live checkpoint kept moving through {self.max_switch_attempts} attempts; "
            "the live projection is untouched, try again"
        )

    # -- helpers ---------------------------------------------------------------------------
    def _live_keys(self) -> dict[int, dict[str, set[str]]]:
        """The live projection keys, by partition and projection (one SCAN)."""
        found: dict[int, dict[str, set[str]]] = {}
        for key in self._scan(self.keys.every_key()):
            what = self.keys.projection_of(key)
            if what is not None:
                found.setdefault(what.partition, {}).setdefault(what.projection, set()).add(key)
        return found

    def _drop_shadows(self, projections: Sequence[str]) -> None:
        for projection in projections:
            self._unlink(self._scan(self.keys.shadow(projection).every_key()))

    def _scan(self, pattern: str) -> set[str]:
        return {str(k) for k in self.client.scan_iter(match=pattern, count=1000)}

    def _unlink(self, keys: Iterable[str]) -> None:
        """One key per command: the keys may lie in different slots."""
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.unlink(key)
            pipe.execute()

    def _log_length(self) -> int:
        with self.client.pipeline(transaction=False) as pipe:
            for partition in range(self.keys.partitions):
                pipe.xlen(self.keys.log(partition))
            return sum(int(n) for n in pipe.execute())

    def _report(self) -> None:
        self.on_progress(self.progress)


def _not_applied(generation: Generation, entry_id: str, exc: Exception) -> RebuildError:
    return RebuildError(
        f"partition {generation.partition}: log entry {entry_id} cannot be applied to the "
        f"{generation.projection} projection ({exc})"
    )


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused while a batch is folded: the fold makes no cycles,
    only many objects, which the collector would walk again and again (7% of a rebuild's
    time). Objects are still freed as their last reference goes; the collector runs
    again as soon as the batch is folded."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _format(position: StreamId) -> str:
    return f"{position[0]}-{position[1]}"


def _position(entry_id: str | None) -> StreamId:
    return ORIGIN if entry_id is None else stream_id(entry_id)


_KEY_FIELDS = {
    "account": frozenset({"kind", "account", "hash"}),
    "secret": frozenset({"kind", "account", "hash", "user", "name"}),
    "revoked": frozenset({"kind", "account", "hash"}),
}


def _unsound(keys: Keyspace, key: str, fold: MemoryFold) -> str | None:
    """Why an authentication record could not serve a lookup, or None."""
    kind = keys.projection_of(key)
    if kind is None or kind.projection != auth.NAME:
        return "is not an authentication record"
    record, members = fold.hashes.get(key, {}), fold.sets.get(key, {})
    moments = ("expires", "prev_until", "until")
    match kind.kind:
        case "key":
            required = _KEY_FIELDS.get(record.get("kind", ""))
            if required is None or not required <= record.keys():
                return "is not a complete account or secret key record"
            if any(not record.get(m, "0").isdigit() for m in moments):
                return "holds a moment that is not epoch milliseconds"
        case "account":
            if "name" not in record or record.get("api") not in {"0", "1"}:
                return "is not a complete account record"
        case "user":
            if "name" not in record or record.get("role") not in ROLE_NAMES:
                return "is not a complete user record"
        case "due":
            if any(m.count(":") < 2 for m in fold.zsets.get(key, {})):
                return "holds a member that names no account and key"
        case "subnets":
            for cidr in members:
                problem = _bad_subnet(cidr)
                if problem:
                    return f"holds a bad subnet ({problem})"
    return None


@lru_cache(maxsize=65536)
def _bad_subnet(cidr: str) -> str | None:
    """Why ``cidr`` is not a subnet, or None; remembered: keys share their subnets."""
    try:
        parsed_network(cidr)  # strict: host bits set are a problem too
    except ValueError as exc:
        return str(exc)
    return None
