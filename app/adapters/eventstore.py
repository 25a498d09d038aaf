"""The event log on Redis Streams: an optimistic-concurrency append and readers.

One Lua script appends an account's new events to the account's own stream and
to its partition's stream, after checking that the account is still at the
version the decision was made against. Both streams and the head share the
partition's hash tag, so the script touches one slot. Entries are never
trimmed or deleted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import redis

from app.adapters.keyspace import Keyspace
from app.adapters.redis_client import as_entries, store_call
from app.domain.errors import ConcurrencyConflict
from app.domain.events import Event
from app.domain.mapper import from_record, to_record

APPEND_SCRIPT = """
-- KEYS: account stream, partition stream, account head
-- ARGV: expected version, fields per event, then the events' field/value pairs
local current = tonumber(redis.call('HGET', KEYS[3], 'version') or '0')
local expected = tonumber(ARGV[1])
if current ~= expected then
  return redis.error_reply('KLCONFLICT account is at version ' .. current)
end
local width = tonumber(ARGV[2])
local count = (#ARGV - 2) / width
local account_ids, log_ids = {}, {}
for i = 0, count - 1 do
  local fields = {}
  for j = 1, width do fields[j] = ARGV[2 + i * width + j] end
  account_ids[#account_ids + 1] = redis.call('XADD', KEYS[1], '*', unpack(fields))
  log_ids[#log_ids + 1] = redis.call('XADD', KEYS[2], '*', unpack(fields))
end
redis.call('HSET', KEYS[3], 'version', expected + count)
return {account_ids, log_ids}
"""


@dataclass(frozen=True)
class Appended:
    partition: int
    account_entry_ids: tuple[str, ...]
    log_entry_ids: tuple[str, ...]

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
    def __init__(self, client: redis.Redis, keyspace: Keyspace):
        self.client = client
        self.keys = keyspace
        self._append = client.register_script(APPEND_SCRIPT)

    @store_call
    def append(self, account_id: str, expected_version: int, events: Sequence[Event]) -> Appended:
        if not events:
            raise ValueError("nothing to append")
        records = [to_record(e) for e in events]
        for offset, event in enumerate(events, start=1):
            if event.account_id != account_id or event.version != expected_version + offset:
                raise ValueError("events must continue the account's version sequence")
        width = 2 * len(records[0])
        argv: list[str] = [str(expected_version), str(width)]
        for record in records:
            for name in sorted(record):
                argv += [name, record[name]]
        partition = self.keys.partition_of(account_id)
        try:
            account_ids, log_ids = self._append(
                keys=[
                    self.keys.account_events(account_id),
                    self.keys.log(partition),
                    self.keys.account_head(account_id),
                ],
                args=argv,
            )
        except redis.ResponseError as exc:
            if "KLCONFLICT" in str(exc):
                raise ConcurrencyConflict(
                    "the account was changed by another request at the same time; "
                    "read it again and retry"
                ) from None
            raise
        return Appended(partition, tuple(account_ids), tuple(log_ids))

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
        return [StoredEvent(entry_id, fields) for entry_id, fields in entries]

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
