"""Reads the system-log projection: one stream per account, newest first.

Each entry's stream id is the id of the log entry it was projected from, so its
time part is when the change was recorded, and time ranges map onto id ranges.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import as_entries, store_call

SCAN_BATCH = 500


@dataclass(frozen=True)
class LogPage:
    entries: list[dict[str, Any]]
    has_more: bool


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class SystemLogReader:
    def __init__(self, client: redis.Redis, keyspace: Keyspace):
        self.client = client
        self.keys = keyspace

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
        key = self.keys.syslog(account_id)
        upper = f"{_ms(end)}-18446744073709551615" if end else "+"
        lower = f"{_ms(start)}-0" if start else "-"
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
