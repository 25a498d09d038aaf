"""Maps events to the flat string records stored in Redis Streams, and back.

A stored record is ``{type, schema, account, version, time, actor, data}``;
``actor`` and ``data`` are canonical JSON (sorted keys, no spaces) so the same
event always produces the same bytes. Old schema versions are brought up to date
by ``UPCASTERS`` when read, so the log itself is never rewritten.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from keyledger.domain.errors import KeyledgerError
from keyledger.domain.events import EVENT_TYPES, Actor, Event

BASE_FIELDS = frozenset({"account_id", "version", "time", "actor"})

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _secret_key_created_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Keys created before the lifecycle (issue 9) have no description and never expire."""
    return {**data, "description": "", "expires": None}


#: (type name, schema version it reads) -> function returning the next version's data.
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("SecretKeyCreated", 1): _secret_key_created_v1_v2,
}


class CorruptEvent(KeyledgerError):
    """A stored record that cannot be turned back into an event."""

    status = 500
    code = "corrupt_event"


#: ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``,
#: without building a new encoder per call (the same bytes; a rebuild renders millions).
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys, no spaces and characters as they are.

    A flat object of strings and integers (a system-log entry, a report) is encoded by
    orjson, about six times faster; its bytes are ``json.dumps``'s (tests compare them
    on hostile strings: controls, quotes, U+2028, astral characters, key order). Anything
    else, and anything orjson refuses (lone surrogates, integers beyond 64 bits), goes
    through ``json``.
    """
    if type(value) is dict:
        for item in value.values():
            kind = type(item)
            if kind is not str and kind is not int:
                break
        else:
            try:
                return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
            except orjson.JSONEncodeError:
                pass  # json encodes it (or raises, as it always did)
    return _canonical(value)


def json_loads(text: str) -> Any:
    """``json.loads(text)``: by orjson (about three times faster), and by ``json`` for
    what orjson refuses (lone surrogates, NaN...) or reads otherwise (an integer beyond
    64 bits becomes a float there), so that what ``json`` reads and refuses is unchanged."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    return json.loads(text) if _holds_float(value) else value


def _holds_float(value: Any) -> bool:
    kind = type(value)
    if kind is float:
        return True
    if kind is dict or kind is list:
        for item in value.values() if kind is dict else value:
            kind = type(item)
            if kind is float or ((kind is dict or kind is list) and _holds_float(item)):
                return True
    return False


def format_time(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds, e.g. ``2026-11-28T06:00:00.123Z``."""
    m = moment.astimezone(UTC)
    # %-formatting: half the time of the same f-string specs (every event, every entry)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031
        m.year,
        m.month,
        m.day,
        m.hour,
        m.minute,
        m.second,
        m.microsecond // 1000,
    )


def format_seconds(moment: datetime) -> str:
    """ISO-8601 UTC to the second, as the system log shows it: ``2019-03-15T14:26:02Z``."""
    m = moment.astimezone(UTC)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (m.year, m.month, m.day, m.hour, m.minute, m.second)  # noqa: UP031


_ACTORS: dict[str, Actor] = {}  # stored actor JSON -> Actor: a log has few distinct actors
_ACTORS_HELD = 4096


def _actor(text: str) -> Actor:
    """The actor of a stored record; frozen, so one instance serves every event it made."""
    actor = _ACTORS.get(text)
    if actor is None:
        if len(_ACTORS) >= _ACTORS_HELD:
            _ACTORS.clear()
        actor = _ACTORS[text] = Actor(**json_loads(text))
    return actor


def parse_time(text: str) -> datetime:
    # Python 3.11's fromisoformat reads a trailing "Z" as UTC.
    return datetime.fromisoformat(text).astimezone(UTC)


_TIME_FIELDS: dict[str, frozenset[str]] = {}


def time_fields(cls: type[Event]) -> frozenset[str]:
    """The data fields of ``cls`` that hold a moment (``datetime`` or ``datetime | None``):
    stored as ``format_time`` text, read back as UTC datetimes."""
    known = _TIME_FIELDS.get(cls.TYPE)
    if known is None:
        hints = typing.get_type_hints(cls)
        known = _TIME_FIELDS[cls.TYPE] = frozenset(
            f.name
            for f in dataclasses.fields(cls)
            if f.name not in BASE_FIELDS
            and (hints[f.name] is datetime or datetime in typing.get_args(hints[f.name]))
        )
    return known


_PLAIN_FIELDS: dict[str, frozenset[str] | None] = {}


def _plain_fields(cls: type[Event]) -> frozenset[str] | None:
    """The data fields of ``cls`` if its __init__ only assigns its fields (a dataclass
    with a ``__dict__``, no ``__post_init__``, every field taken by __init__); else None."""
    if cls.TYPE in _PLAIN_FIELDS:
        return _PLAIN_FIELDS[cls.TYPE]
    fields = dataclasses.fields(cls)
    plain = (
        "__slots__" not in cls.__dict__
        and not hasattr(cls, "__post_init__")
        and all(f.init for f in fields)
    )
    known = _PLAIN_FIELDS[cls.TYPE] = (
        frozenset(f.name for f in fields if f.name not in BASE_FIELDS) if plain else None
    )
    return known


def event_data(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = {}
    moments = time_fields(type(event))
    for f in dataclasses.fields(event):
        if f.name in BASE_FIELDS:
            continue
        value = getattr(event, f.name)
        if f.name in moments and value is not None:
            value = format_time(value)
        data[f.name] = list(value) if isinstance(value, tuple) else value
    return data


_ACTOR_JSON: dict[Actor, str] = {}  # Actor -> its stored JSON (frozen, hashable)


def _actor_json(actor: Actor) -> str:
    text = _ACTOR_JSON.get(actor)
    if text is None:
        if len(_ACTOR_JSON) >= _ACTORS_HELD:
            _ACTOR_JSON.clear()
        fields = {k: v for k, v in dataclasses.asdict(actor).items() if v is not None}
        text = _ACTOR_JSON[actor] = canonical_json(fields)
    return text


def to_record(event: Event) -> dict[str, str]:
    return {
        "type": event.TYPE,
        "schema": str(event.SCHEMA),
        "account": event.account_id,
        "version": str(event.version),
        "time": format_time(event.time),
        "actor": _actor_json(event.actor),
        "data": canonical_json(event_data(event)),
    }


def from_record(record: Mapping[str, str]) -> Event:
    try:
        cls = EVENT_TYPES[record["type"]]
        schema = int(record["schema"])
        data: dict[str, Any] = json_loads(record["data"])
        if not isinstance(data, dict):
            raise ValueError("event data is not an object")
        while schema < cls.SCHEMA:
            data = UPCASTERS[(cls.TYPE, schema)](data)
            schema += 1
        if schema != cls.SCHEMA:
            raise ValueError(f"schema {schema} is newer than this code knows ({cls.SCHEMA})")
        moments = time_fields(cls)
        for name, value in data.items():
            if isinstance(value, list):
                data[name] = tuple(value)
            elif name in moments and value is not None:
                data[name] = parse_time(value)
        base: dict[str, Any] = {
            "account_id": record["account"],
            "version": int(record["version"]),
            "time": parse_time(record["time"]),
            "actor": _actor(record["actor"]),
        }
        if data.keys() == _plain_fields(cls):
            # What the generated __init__ would do (assign each field), at a fifth of
            # the cost of a frozen dataclass's __init__ (a rebuild decodes millions).
            event = object.__new__(cls)
            event.__dict__.update(base, **data)
            return event
        return cls(**base, **data)
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptEvent(f"cannot decode event record: {exc!r}") from exc
