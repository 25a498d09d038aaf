"""The system log: one append-only stream per account, as ``GET /v1/logs`` shows it.

Each entry takes the id of the log entry it came from, so a replay produces the
same ids and an entry can never be added twice (Redis refuses a smaller id).
"""

from __future__ import annotations

from typing import Any

from keyledger.adapters.keyspace import Keyspace
from keyledger.domain import events as ev
from keyledger.domain.mapper import canonical_json
from keyledger.domain.systemlog import entry_for

NAME = "syslog"


def as_json(event: ev.Event) -> str:
    entry = entry_for(event)
    body: dict[str, Any] = {
        "id": entry.id,
        "time": entry.time,
        "originator": entry.originator,
        "resource": entry.resource,
        "resourceId": entry.resource_id,
        "type": entry.type,
        "description": entry.description,
    }
    if entry.api_key_name is not None:
        body["apiKeyName"] = entry.api_key_name
    return canonical_json(body)


def apply(pipe: Any, keys: Keyspace, event: ev.Event, entry_id: str) -> None:
    pipe.xadd(keys.syslog(event.account_id), {"entry": as_json(event)}, id=entry_id)
