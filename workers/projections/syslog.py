"""The system log: one append-only stream per account, as ``GET /v1/logs`` shows it.

Each entry takes the id of the log entry it came from, so a replay produces the
same ids and an entry can never be added twice (Redis refuses a smaller id).

Two sorted sets index the stream so that a page costs what the page holds, never
the account's history (``app.adapters.systemlog``): every entry id, and the entry
ids of each resource, scored by the event's version. Versions grow with the entry
ids, so rank in an index is position in the log, and an offset is a rank.
"""

from __future__ import annotations

from typing import Any

from keyledger.adapters.keyspace import Keyspace
from keyledger.domain import events as ev
from keyledger.domain.mapper import canonical_json
from keyledger.domain.systemlog import entry_values

NAME = "syslog"


def as_json(event: ev.Event) -> str:
    return rendered(event)[0]


def rendered(event: ev.Event) -> tuple[str, str]:
    """The stored entry (canonical JSON, in API form) and its resource id."""
    id, time, originator, api_key_name, resource, resource_id, kind, description = entry_values(
        event
    )
    body: dict[str, Any] = {
        "id": id,
        "time": time,
        "originator": originator,
        "resource": resource,
        "resourceId": resource_id,
        "type": kind,
        "description": description,
    }
    if api_key_name is not None:
        body["apiKeyName"] = api_key_name
    return canonical_json(body), resource_id


def apply(pipe: Any, keys: Keyspace, event: ev.Event, entry_id: str) -> None:
    entry, resource_id = rendered(event)
    stream, index, resource_index = keys.syslog_keys(event.account_id, resource_id)
    pipe.xadd(stream, {"entry": entry}, id=entry_id)
    pipe.zadd(index, {entry_id: event.version})
    pipe.zadd(resource_index, {entry_id: event.version})
