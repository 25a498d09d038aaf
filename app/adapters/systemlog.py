"""Reads the system-log projection: one stream per account, newest first.

Each entry's stream id is the id of the log entry it was projected from, so its
time part is when the change was recorded, and time ranges map onto id ranges.

A page costs what it holds, never the account's history: the projection keeps two
sorted sets of entry ids scored by version (``workers.projections.syslog``), one
for the whole account and one per resource. Versions grow with the entry ids, so
an entry's rank in an index is its place in the log, newest first. One script
call, in the account's hash slot:

- a time bound becomes a version: the newest entry at or before ``endTime`` and the
  oldest at or after ``startTime`` (one ``XREVRANGE``/``XRANGE`` ``COUNT 1`` each,
  O(log N)), their versions from the account's index (``ZSCORE``, O(1));
- the entries newer than ``endTime`` are counted in the index paged (``ZCOUNT``,
  O(log N)), and ``offset`` is added to that rank;
- ``ZREVRANGE`` by rank returns the page's ids (O(log N + limit), however large the
  offset: ranks are kept in the skip list) and each entry is read by its id
  (``XRANGE id id``, O(log N)).

So a page costs O(log N + limit) Redis work and one round trip, with or without
``resourceId``, ``startTime`` and ``endTime``, at any ``offset``; a ``resourceId``
nothing carries is an empty index, answered at once.

A projection written before the indexes existed (the index holds fewer entries
than the stream) is read by scanning the stream, as before, and a warning says to
rebuild it (``keyledger projections rebuild log``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import as_entries, store_call
from keyledger.adapters.topology import Client

log = logging.getLogger("keyledger.systemlog")

SCAN_BATCH = 500
LAST_SEQUENCE = 18446744073709551615

PAGE_SCRIPT = """
-- KEYS: the account's system-log stream, its index, the index to page through (the
--       account's own, or a resource's)
-- ARGV: lowest entry id ('-': none), highest entry id ('+': none), offset, count
-- Returns the entries' JSON, newest first; false if the index does not cover the stream.
if redis.call('ZCARD', KEYS[2]) ~= redis.call('XLEN', KEYS[1]) then return false end
local newest, oldest = nil, nil
if ARGV[2] ~= '+' then
  local found = redis.call('XREVRANGE', KEYS[1], ARGV[2], '-', 'COUNT', 1)[1]
  if not found then return {} end
  newest = redis.call('ZSCORE', KEYS[2], found[1])
  if not newest then return false end
end
if ARGV[1] ~= '-' then
  local found = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', 1)[1]
  if not found then return {} end
  oldest = redis.call('ZSCORE', KEYS[2], found[1])
  if not oldest then return false end
  oldest = tonumber(oldest)
end
local first = tonumber(ARGV[3])
if newest then
  first = first + redis.call('ZCOUNT', KEYS[3], '(' .. newest, '+inf')
end
local ids = redis.call('ZREVRANGE', KEYS[3], first, first + tonumber(ARGV[4]) - 1, 'WITHSCORES')
local page = {}
for i = 1, #ids, 2 do
  if oldest and tonumber(ids[i + 1]) < oldest then break end
  local entry = redis.call('XRANGE', KEYS[1], ids[i], ids[i])[1]
  if not entry or entry[2][1] ~= 'entry' then return false end
  page[#page + 1] = entry[2][2]
end
return page
"""


@dataclass(frozen=True)
class LogPage:
    entries: list[dict[str, Any]]
    has_more: bool


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class SystemLogReader:
    def __init__(self, client: Client, keyspace: Keyspace):
        self.client = client
        self.keys = keyspace
        self._page = client.register_script(PAGE_SCRIPT)
        self._warned = False

    @store_call
    def page(
        self,
        account_id: str,
        *,
        offset: int,
        limit: int,
        start: datetime | None = None,
        end: datetime | None = None,
        resource_id: str | None = None,
    ) -> LogPage:
        lower = f"{_ms(start)}-0" if start else "-"
        upper = f"{_ms(end)}-{LAST_SEQUENCE}" if end else "+"
        everything = self.keys.syslog_index(account_id)
        paged = (
            everything
            if resource_id is None
            else self.keys.syslog_resource_index(account_id, resource_id)
        )
        reply = self._page(
            keys=[self.keys.syslog(account_id), everything, paged],
            args=[lower, upper, offset, limit + 1],
        )
        if reply is None:
            self._warn(account_id)
            return self._scan(account_id, offset, limit, lower, upper, resource_id)
        entries = [json.loads(text) for text in reply]
        return LogPage(entries[:limit], len(entries) > limit)

    def _scan(
        self,
        account_id: str,
        offset: int,
        limit: int,
        lower: str,
        upper: str,
        resource_id: str | None,
    ) -> LogPage:
        """The page read by walking the stream: what an unindexed projection needs."""
        key = self.keys.syslog(account_id)
        skipped, entries = 0, list[dict[str, Any]]()
        while True:
            batch = as_entries(self.client.xrevrange(key, max=upper, min=lower, count=SCAN_BATCH))
            for _entry_id, fields in batch:
                entry = json.loads(fields["entry"])
                if resource_id is not None and entry.get("resourceId") != resource_id:
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                if len(entries) == limit:
                    return LogPage(entries, True)
                entries.append(entry)
            if len(batch) < SCAN_BATCH:
                return LogPage(entries, False)
            upper = f"({batch[-1][0]}"

    def _warn(self, account_id: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "the system log of account %s has no complete index (projected by an older "
                "keyledger?): its pages are read by scanning; run 'keyledger projections "
                "rebuild log' to index every account",
                account_id,
            )
