"""The event log on Redis Streams: an optimistic-concurrency append and readers.

One Lua script appends an account's new events to the account's own stream and
to its partition's stream, after checking that the account is still at the
version the decision was made against. Both streams and the head share the
partition's hash tag, so the script touches one slot. Entries are never
trimmed or deleted.

The script also records, per account, which partition log entry holds each version
(``Keyspace.log_index``), so that one account's history can be checked against the
partition log without reading the other accounts' entries (``adapters.audit``).

Each record is a link of the account's hash chain (``app.domain.chain``). Redis
Lua has no SHA-256, so the hashes are computed here, continuing from the hash
of the account's last event; the script refuses the append unless the head
still holds that version and that hash, so two writers can never both extend
the same link. The store remembers the last (version, hash) it read or wrote
for recently used accounts: a change is decided on a state just read, so the
hash is usually known without asking Redis, and a wrong memory can only cost a
refused append (after which it is forgotten), never a fork.

The same script keeps the account's budget of changes made through the API
(``KEYLEDGER_CHANGES_PER_MINUTE``, counted on the Redis server's clock; revocations
count apart, ``KEYLEDGER_REVOCATIONS_PER_MINUTE``): past it nothing is written; and, for a request with an ``Idempotency-Key``, marks the
request's idempotency record with the version it appended, so that the record
and the log can never disagree about whether the change was made (both are in
the partition's slot, written by one script, replicated as one). Reading after a
version (``read_after_version``) bisects the stream's ids instead of reading the
history before it.

On a Redis Cluster the script runs on the plain client of the partition's
primary (``Topology.on_primary``), never through the cluster client's retries:
an append that timed out may have been applied and is not sent again. With
``KEYLEDGER_MIN_REPLICAS`` the connection stays pinned until ``confirm``
(``adapters.replication``).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

import redis

from keyledger.adapters.idempotency import Receipt
from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import REDIS_ERRORS, as_entries, store_call
from keyledger.adapters.replication import Durability, Pinned
from keyledger.adapters.topology import Client, Node, Topology
from keyledger.domain.chain import GENESIS, chained
from keyledger.domain.errors import ConcurrencyConflict, RequestExpired, TooManyChanges
from keyledger.domain.events import Event
from keyledger.domain.mapper import from_record, to_record
from keyledger.observability.observer import IGNORE, Observer

APPEND_SCRIPT = """
-- KEYS: account stream, partition stream, account head, the account's change budget,
--       the account's log index (version -> partition log entry id),
--       [the request's idempotency record]
-- ARGV: expected version, expected head hash, new head hash, fields per event,
--       invalidation channel, its message, changes allowed per minute (0: no budget),
--       the idempotency record's new value ('': none), its time to live (ms) and the
--       end of the request's lease (epoch ms), then the events' field/value pairs
local head = redis.call('HMGET', KEYS[3], 'version', 'hash')
local current = tonumber(head[1] or '0')
local expected = tonumber(ARGV[1])
if current ~= expected then
  return redis.error_reply('KLCONFLICT account is at version ' .. current)
end
if (head[2] or string.rep('0', 64)) ~= ARGV[2] then
  return redis.error_reply('KLCONFLICT account head hash changed at version ' .. current)
end
-- The budget: changes per fixed one-minute window of the Redis server's clock.
local budget, window, used = tonumber(ARGV[7]), nil, 0
if budget > 0 then
  local now = tonumber(redis.call('TIME')[1])
  window = tostring(math.floor(now / 60))
  if redis.call('HGET', KEYS[4], 'window') == window then
    used = tonumber(redis.call('HGET', KEYS[4], 'count') or '0')
  end
  if used >= budget then
    return redis.error_reply('KLBUDGET ' .. (60 - now % 60))
  end
end
-- A request holding an idempotency record appends only within its lease: after it,
-- a retry may have taken the record over and made the change itself.
if ARGV[8] ~= '' then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[10]) then
    return redis.error_reply('KLLATE the request took too long to reach its change')
  end
end
local width = tonumber(ARGV[4])
local count = (#ARGV - 10) / width
local account_ids, log_ids, logged = {}, {}, {}
for i = 0, count - 1 do
  local fields = {}
  for j = 1, width do fields[j] = ARGV[10 + i * width + j] end
  account_ids[#account_ids + 1] = redis.call('XADD', KEYS[1], '*', unpack(fields))
  log_ids[#log_ids + 1] = redis.call('XADD', KEYS[2], '*', unpack(fields))
  logged[#logged + 1] = tostring(expected + i + 1)
  logged[#logged + 1] = log_ids[#log_ids]
end
redis.call('HSET', KEYS[5], unpack(logged))
redis.call('HSET', KEYS[3], 'version', expected + count, 'hash', ARGV[3])
if budget > 0 then
  redis.call('HSET', KEYS[4], 'window', window, 'count', used + 1)
  redis.call('PEXPIRE', KEYS[4], 61000)
end
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[6], ARGV[8], 'PX', tonumber(ARGV[9]))
end
-- Announce the change as recorded: every process re-reads the account's history
-- before its next read of it (its authentication records stay as projected).
redis.call('PUBLISH', ARGV[5], ARGV[6])
return {account_ids, log_ids}
"""

AFTER_VERSION_SCRIPT = """
-- KEYS: account stream, account head; ARGV: version, count
-- The events after ARGV[1], without reading the history before them. Versions are
-- contiguous and grow with the stream id, so the entry of version ARGV[1] + 1 is the
-- last entry whose version is at most that: found by bisecting the ids, first on
-- their milliseconds, then on their sequence numbers (each probe an XRANGE COUNT 1).
-- Returns false when the stream breaks that rule (the caller reads it in order).
local target = tonumber(ARGV[1]) + 1
if target > tonumber(redis.call('HGET', KEYS[2], 'version') or '0') then
  return {}
end
local function id(ms, seq) return string.format('%.0f-%.0f', ms, seq) end
local function parts(entry_id)
  local dash = string.find(entry_id, '-', 1, true)
  return tonumber(string.sub(entry_id, 1, dash - 1)), tonumber(string.sub(entry_id, dash + 1))
end
local function version_of(entry)
  if not entry then return nil end
  for i = 1, #entry[2], 2 do
    if entry[2][i] == 'version' then return tonumber(entry[2][i + 1]) end
  end
  return nil
end
local function at_most(ms, seq)  -- the first entry at or after ms-seq is at most the target
  local version = version_of(redis.call('XRANGE', KEYS[1], id(ms, seq), '+', 'COUNT', 1)[1])
  return version ~= nil and version <= target
end
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if not first or not at_most(parts(first[1])) then return false end
local low, high = parts(first[1]), parts(last[1])
while low < high do
  local mid = math.floor((low + high + 1) / 2)
  if at_most(mid, 0) then low = mid else high = mid - 1 end
end
local ms = low
local _, seq_low = parts(redis.call('XRANGE', KEYS[1], id(ms, 0), '+', 'COUNT', 1)[1][1])
local top = string.format('%.0f-18446744073709551615', ms)
local _, seq_high = parts(redis.call('XREVRANGE', KEYS[1], top, '-', 'COUNT', 1)[1][1])
while seq_low < seq_high do
  local mid = math.floor((seq_low + seq_high + 1) / 2)
  if at_most(ms, mid) then seq_low = mid else seq_high = mid - 1 end
end
local page = redis.call('XRANGE', KEYS[1], id(ms, seq_low), '+', 'COUNT', tonumber(ARGV[2]))
if version_of(page[1]) ~= target then return false end
return page
"""
BUDGET_SPENT = re.compile(r"KLBUDGET (\d+)")


@dataclass(frozen=True)
class Appended:
    partition: int
    account_entry_ids: tuple[str, ...]
    log_entry_ids: tuple[str, ...]
    #: The account's version and chain hash after the append.
    version: int = 0
    digest: str = ""
    #: The connection that appended, held for ``EventStore.confirm`` (with replicas).
    pinned: Pinned | None = None

    @property
    def last_log_id(self) -> str:
        return self.log_entry_ids[-1]


@dataclass(frozen=True)
class StoredEvent:
    entry_id: str
    record: dict[str, str]

    @property
    def event(self) -> Event:
        return from_record(self.record)


class EventStore:
    def __init__(
        self,
        client: Client,
        keyspace: Keyspace,
        remembered_heads: int = 10_000,
        *,
        topology: Topology | None = None,
        durability: Durability | None = None,
    ):
        self.client = client
        self.keys = keyspace
        self.topology = topology or Topology(client)
        self.durability = durability or Durability()
        self._append = client.register_script(APPEND_SCRIPT)
        self._after_version = client.register_script(AFTER_VERSION_SCRIPT)
        self._heads: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._heads_capacity = remembered_heads
        self._lock = threading.Lock()
        #: Told what was appended (metrics); installed by the entry point.
        self.observer: Observer = IGNORE

    @store_call
    def append(
        self,
        account_id: str,
        expected_version: int,
        events: Sequence[Event],
        *,
        change_budget: int = 0,
        revocation: bool = False,
        receipt: Receipt | None = None,
    ) -> Appended:
        """Append ``events`` if the account is still at ``expected_version``.

        ``change_budget`` (per minute, 0: none) counts this append as one change against
        the account's budget, in the same script: past it nothing is written and
        ``TooManyChanges`` says when the window ends (Redis's clock); with ``revocation``
        it is counted in the account's budget of revocations instead. ``receipt``: the
        idempotency record the same script marks with the new version.
        """
        if not events:
            raise ValueError("nothing to append")
        for offset, event in enumerate(events, start=1):
            if event.account_id != account_id or event.version != expected_version + offset:
                raise ValueError("events must continue the account's version sequence")
        prev = self._chain_head(account_id, expected_version)
        records = chained([to_record(e) for e in events], prev)
        width = 2 * len(records[0])
        version, digest = expected_version + len(records), records[-1]["hash"]
        partition = self.keys.partition_of(account_id)
        keys = [
            self.keys.account_events(account_id),
            self.keys.log(partition),
            self.keys.account_head(account_id),
            self.keys.revocation_budget(account_id)
            if revocation
            else self.keys.change_budget(account_id),
            self.keys.log_index(account_id),
        ]
        argv: list[str] = [
            str(expected_version),
            prev,
            digest,
            str(width),
            self.keys.invalidations(),
            json.dumps([account_id]),
            str(change_budget),
            "",
            "0",
            "0",
        ]
        if receipt is not None and self.keys.partition_of(receipt.account_id) == partition:
            keys.append(receipt.record)
            argv[7:10] = [
                receipt.recorded(version, digest),
                str(receipt.ttl_ms),
                str(receipt.lease_until),
            ]
        for record in records:
            for name in sorted(record):
                argv += [name, record[name]]

        def append_on(node: Node) -> tuple[list[list[str]], Pinned | None]:
            pinned = Pinned(node) if self.durability.required else None
            try:
                reply = self._append(
                    keys=keys, args=argv, client=node.client if pinned is None else pinned.client
                )
            except BaseException:
                if pinned is not None:
                    pinned.close()
                raise
            return reply, pinned

        try:
            (account_ids, log_ids), pinned = self.topology.on_primary(keys[0], append_on)
        except redis.ResponseError as exc:
            if "KLCONFLICT" in str(exc):
                self._forget(account_id)
                raise self._conflict() from None
            if "KLLATE" in str(exc):
                raise RequestExpired(
                    "the change was not made: the request took too long to reach it (its "
                    "Idempotency-Key reservation ran out); retry with the same Idempotency-Key"
                ) from None
            budget_spent = BUDGET_SPENT.search(str(exc))
            if budget_spent:
                what = "revocations" if revocation else "changes"
                raise TooManyChanges(
                    f"this account may record at most {change_budget} {what} a minute "
                    "through the API; retry when the minute is over",
                    retry_after=max(int(budget_spent[1]), 1),
                ) from None
            raise
        self._remember(account_id, version, digest)
        self.observer.appended(events)
        return Appended(partition, tuple(account_ids), tuple(log_ids), version, digest, pinned)

    def confirm(self, appended: Appended) -> bool:
        """Whether enough replicas hold the append and everything its primary wrote
        before now (always, without ``KEYLEDGER_MIN_REPLICAS``). Releases the pinned
        connection: call it once per append, after waiting for the projector."""
        if appended.pinned is None:
            return True
        try:
            replicas = appended.pinned.confirm(
                self.keys.replication_mark(appended.partition), self.durability
            )
        finally:
            appended.pinned.close()
        return replicas >= self.durability.min_replicas

    def replicated(self, account_id: str) -> bool:
        """Whether enough replicas hold everything the account's primary holds now (a
        retry of a change that was not confirmed asks this)."""
        if not self.durability.required:
            return True
        partition = self.keys.partition_of(account_id)
        try:
            pinned = Pinned(self.topology.primary(self.keys.log(partition)))
        except REDIS_ERRORS:
            return False
        try:
            return pinned.confirm(self.keys.replication_mark(partition), self.durability) >= (
                self.durability.min_replicas
            )
        finally:
            pinned.close()

    @store_call
    def holds(self, account_id: str, version: int, digest: str) -> bool:
        """Whether the account's history has this version with this chain hash (what an
        append reported), i.e. whether that change is in the log."""
        if version < 1:
            return False
        found = self.read_after_version(account_id, version - 1, 1)
        return (
            bool(found)
            and found[0].record.get("version") == str(version)
            and found[0].record.get("hash") == digest
        )

    def _chain_head(self, account_id: str, expected_version: int) -> str:
        """The hash the new events chain from: remembered, or read from the head."""
        if expected_version == 0:
            return GENESIS
        with self._lock:
            known = self._heads.get(account_id)
        if known is not None and known[0] == expected_version:
            return known[1]
        version, digest = self.head(account_id)
        if int(version or 0) != expected_version:
            raise self._conflict()
        return digest or GENESIS

    def _remember(self, account_id: str, version: int, digest: str) -> None:
        with self._lock:
            known = self._heads.get(account_id)
            if known is None or known[0] < version:
                self._heads[account_id] = (version, digest)
            self._heads.move_to_end(account_id)
            while len(self._heads) > self._heads_capacity:
                self._heads.popitem(last=False)

    def _forget(self, account_id: str) -> None:
        with self._lock:
            self._heads.pop(account_id, None)

    def forget(self, accounts: list[str] | None) -> None:
        """Drop the remembered heads of these accounts (None: of every account), told by
        the invalidation subscription (``AuthCache.subscribe``): after a failover the
        new primary may hold fewer events than were remembered."""
        if accounts is None:
            with self._lock:
                self._heads.clear()

    @staticmethod
    def _conflict() -> ConcurrencyConflict:
        return ConcurrencyConflict(
            "the account was changed by another request at the same time; read it again and retry"
        )

    @store_call
    def head(self, account_id: str) -> tuple[str | None, str | None]:
        """The version and chain hash the account's head holds, as stored (None if absent)."""
        reply = self.client.hmget(self.keys.account_head(account_id), ["version", "hash"])
        version, digest = (None if value is None else str(value) for value in reply)
        return version, digest

    @store_call
    def version(self, account_id: str) -> int:
        return int(self.client.hget(self.keys.account_head(account_id), "version") or 0)

    @store_call
    def read_account(
        self, account_id: str, after: str = "0", count: int = 1000
    ) -> list[StoredEvent]:
        """Events of one account strictly after stream id ``after``, oldest first."""
        entries = as_entries(
            self.client.xrange(
                self.keys.account_events(account_id),
                min=f"({after}" if after != "0" else "-",
                count=count,
            )
        )
        if entries:
            last = entries[-1][1]
            if last.get("version", "").isdigit() and "hash" in last:
                self._remember(account_id, int(last["version"]), last["hash"])
        return [StoredEvent(entry_id, fields) for entry_id, fields in entries]

    @store_call
    def read_after_version(self, account_id: str, version: int, count: int) -> list[StoredEvent]:
        """Up to ``count`` events with a version greater than ``version``, oldest first.

        One script call: the head's version first (a version at or past it answers at
        once), then a bisection of the stream ids to the entry of ``version + 1``, so the
        cost is that of the page plus about 100 single-entry reads, whatever the length
        of the history. A stream whose versions are not contiguous (tampered with) is
        read from the start instead, which gives the same page.
        """
        reply = self._after_version(
            keys=[self.keys.account_events(account_id), self.keys.account_head(account_id)],
            args=[version, count],
        )
        if reply is None:
            later = (s for s in self.iter_account(account_id) if int(s.record["version"]) > version)
            return list(islice(later, count))
        return [
            StoredEvent(str(entry_id), dict(zip(fields[::2], fields[1::2], strict=True)))
            for entry_id, fields in reply
        ]

    def iter_account(
        self, account_id: str, after: str = "0", batch: int = 1000
    ) -> Iterator[StoredEvent]:
        while True:
            page = self.read_account(account_id, after, batch)
            yield from page
            if len(page) < batch:
                return
            after = page[-1].entry_id

    @store_call
    def read_log(self, partition: int, after: str = "0", count: int = 2000) -> list[StoredEvent]:
        """Entries of one partition's log strictly after ``after``, oldest first."""
        entries = as_entries(
            self.client.xrange(
                self.keys.log(partition), min=f"({after}" if after != "0" else "-", count=count
            )
        )
        return [StoredEvent(entry_id, fields) for entry_id, fields in entries]
