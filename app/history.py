"""An account's history as auditors read it: one serializer, positions, replay, state then.

``GET /v1/events`` and ``keyledger events replay`` both print stored events through
``history_item``, so the API and the CLI show the same shape with the same fields
redacted. ``keyledger state`` folds the same events with ``AccountState.evolve``: the
answer comes from the log alone, never from a projection.

A *position* names a point in the history the way an auditor would: an event's version
(``12``), its stream entry id (``1795846140133-0``, the ``id`` printed with it) or a
moment (``2026-11-28T06:09:06Z``, compared with each event's recorded ``time``). Ranges
are inclusive at both ends and always a contiguous run of versions: a range starts at
the first event at or after its start and stops before the first event after its end,
so a folded state is always a prefix of the real history.

Nothing here talks to Redis directly: the store is passed in.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from keyledger.domain.account import AccountState
from keyledger.domain.errors import NotFound
from keyledger.domain.mapper import CorruptEvent, canonical_json, format_time, parse_time

if TYPE_CHECKING:
    from keyledger.adapters.eventstore import StoredEvent

#: Event fields that are not secrets but have no business leaving the server.
REDACTED_FIELDS = frozenset({"key_hash", "key_id", "previous_key_hash"})
#: Columns of the CSV replay, in the order of the JSON items.
COLUMNS = ("id", "version", "type", "schemaVersion", "time", "actor", "data")
#: Cells starting with one of these are formulas to a spreadsheet (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

ENTRY_ID = re.compile(r"\A(\d{1,20})-(\d{1,20})\Z")
VERSION = re.compile(r"\A\d{1,16}\Z")
TIME_OF_DAY = re.compile(r"[Tt ]\d")
MAX_VERSION = 2**53
MAX_ID_PART = 2**64 - 1
FOLD_BATCH = 500


class EventSource(Protocol):
    """What replay needs from the event store (``app.adapters.eventstore.EventStore``)."""

    def read_account(
        self, account_id: str, after: str = "0", count: int = 1000
    ) -> list[StoredEvent]: ...

    def iter_account(
        self, account_id: str, after: str = "0", batch: int = 1000
    ) -> Iterator[StoredEvent]: ...

    def read_after_version(
        self, account_id: str, version: int, count: int
    ) -> list[StoredEvent]: ...


# -- the serializer ------------------------------------------------------------------------
def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True)
class HistoryItem:
    """One stored event as auditors see it: an item of ``/v1/events``, a line of replay."""

    id: str
    version: int
    type: str
    schema_version: int
    time: str
    actor: dict[str, Any]
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The API form (what ``StoredEventSchema`` dumps, key for key)."""
        return {
            "id": self.id,
            "version": self.version,
            "type": self.type,
            "schemaVersion": self.schema_version,
            "time": self.time,
            "actor": self.actor,
            "data": self.data,
        }

    def csv_cells(self) -> list[object]:
        """The ``COLUMNS`` of one CSV row; ``actor`` and ``data`` as compact JSON."""
        item = self.to_json()
        return [canonical_json(item[c]) if isinstance(item[c], dict) else item[c] for c in COLUMNS]


def history_item(stored: StoredEvent) -> HistoryItem:
    record = stored.record
    try:
        actor: dict[str, Any] = json.loads(record["actor"])
        data: dict[str, Any] = json.loads(record["data"])
        return HistoryItem(
            id=stored.entry_id,
            version=int(record["version"]),
            type=record["type"],
            schema_version=int(record["schema"]),
            time=record["time"],
            actor={camel(k): v for k, v in actor.items()},
            data={camel(k): v for k, v in data.items() if k not in REDACTED_FIELDS},
        )
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise CorruptEvent(f"cannot decode event record {stored.entry_id}: {exc!r}") from exc


# -- positions -----------------------------------------------------------------------------
class BadPosition(ValueError):
    """Text that names no point in a history."""


def parse_entry_id(text: str) -> tuple[int, int] | None:
    """``(milliseconds, sequence)`` of a stream entry id, or None if ``text`` is not one."""
    match = ENTRY_ID.fullmatch(text)
    if match is None:
        return None
    ms, seq = int(match[1]), int(match[2])
    if ms > MAX_ID_PART or seq > MAX_ID_PART:
        return None
    return ms, seq


def entry_before(entry: tuple[int, int]) -> str:
    """The id just before ``entry``: reading strictly after it starts at ``entry``.

    ``"0"`` means the start of the stream (see ``EventStore.read_account``).
    """
    ms, seq = entry
    if seq > 0:
        return f"{ms}-{seq - 1}"
    if ms > 0:
        return f"{ms - 1}-{MAX_ID_PART}"
    return "0"


@dataclass(frozen=True)
class Position:
    """A point in an account's history: exactly one of a version, an entry id, a moment."""

    version: int | None = None
    entry: tuple[int, int] | None = None
    moment: datetime | None = None

    def place_of(self, stored: StoredEvent) -> int:
        """-1 if ``stored`` comes before this point, 0 if it is at it, 1 if after."""
        if self.version is not None:
            return _sign(int(stored.record["version"]), self.version)
        if self.entry is not None:
            return _sign(parse_entry_id(stored.entry_id) or (0, 0), self.entry)
        assert self.moment is not None
        return _sign(parse_time(stored.record["time"]), self.moment)

    def __str__(self) -> str:
        if self.version is not None:
            return f"version {self.version}"
        if self.entry is not None:
            return f"entry {self.entry[0]}-{self.entry[1]}"
        assert self.moment is not None
        return format_time(self.moment)


def parse_position(text: str) -> Position:
    """A version (``12``), a stream entry id (``1795846140133-0``) or an ISO-8601 time.

    A time without a zone is UTC; a time must have a time of day (a bare date is
    ambiguous about which end of the day is meant).
    """
    text = text.strip()
    if VERSION.fullmatch(text):
        version = int(text)
        if not 1 <= version <= MAX_VERSION:
            raise BadPosition(f"versions start at 1 and end at {MAX_VERSION}")
        return Position(version=version)
    entry = parse_entry_id(text)
    if entry is not None:
        return Position(entry=entry)
    if ENTRY_ID.fullmatch(text):
        raise BadPosition(f"{text!r} is out of range for a stream entry id")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadPosition(
            f"{text[:64]!r} is neither a version (e.g. 12), a stream entry id "
            "(e.g. 1795846140133-0) nor an ISO-8601 time (e.g. 2026-11-28T06:09:06Z)"
        ) from None
    if not TIME_OF_DAY.search(text):
        raise BadPosition(f"{text!r} is a date: give a time too, e.g. {text}T00:00:00Z")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return Position(moment=moment.astimezone(UTC))
    except OverflowError:
        raise BadPosition(f"{text!r} is out of range") from None


def check_range(start: Position | None, until: Position | None) -> None:
    """Refuse a range whose start is after its end, when both are of the same kind."""
    if start is None or until is None:
        return
    if start.version is not None and until.version is not None:
        backwards = start.version > until.version
    elif start.entry is not None and until.entry is not None:
        backwards = start.entry > until.entry
    elif start.moment is not None and until.moment is not None:
        backwards = start.moment > until.moment
    else:
        backwards = False
    if backwards:
        raise BadPosition(f"the range starts at {start}, after its end at {until}")


def _sign(theirs: Any, mine: Any) -> int:
    return int(theirs > mine) - int(theirs < mine)


# -- reading -------------------------------------------------------------------------------
def replay(
    source: EventSource,
    account_id: str,
    start: Position | None = None,
    until: Position | None = None,
) -> Iterator[StoredEvent]:
    """The account's events from ``start`` through ``until`` (both inclusive), in order.

    Streams: the store pages through the account's stream, nothing is held. A start given
    as an entry id is read from directly; other starts read from the beginning.
    """
    after = "0"
    if start is not None and start.entry is not None:
        after = entry_before(start.entry)
    started = start is None
    for stored in source.iter_account(account_id, after=after):
        if until is not None and until.place_of(stored) > 0:
            return
        if not started:
            started = start is not None and start.place_of(stored) >= 0
            if not started:
                continue
        yield stored


def events_after(
    source: EventSource, account_id: str, after: int, count: int, after_id: str | None = None
) -> list[StoredEvent]:
    """Up to ``count`` events with a version greater than ``after``, oldest first.

    Costs what the page costs, never the history before it: ``after_id``, the entry id
    of version ``after`` (paging links carry it), lets one ``XRANGE`` start right there;
    without it, or when it does not name that version's entry in this account, the
    store finds the entry of ``after + 1`` itself (``read_after_version``: the account's
    head first, so a cursor at or past the end answers at once).
    """
    if after == 0:
        return source.read_account(account_id, "0", count)
    entry = parse_entry_id(after_id) if after_id is not None else None
    if entry is not None:
        page = source.read_account(account_id, entry_before(entry), count + 1)
        if page and page[0].entry_id == after_id and int(page[0].record["version"]) == after:
            return page[1:]
    return source.read_after_version(account_id, after, count)


# -- state at a point ----------------------------------------------------------------------
@dataclass(frozen=True)
class PastState:
    """The account as the events through ``last`` made it."""

    state: AccountState
    last: StoredEvent


def state_at(source: EventSource, account_id: str, at: Position | None = None) -> PastState:
    """Fold the events through ``at`` (all of them without it) with ``AccountState.evolve``."""
    state, last, pending = AccountState(id=account_id), None, []
    try:
        for stored in replay(source, account_id, until=at):
            pending.append(stored.event)
            last = stored
            if len(pending) == FOLD_BATCH:
                state, pending = state.evolve(pending), []
        state = state.evolve(pending)
    except (ValueError, KeyError) as exc:
        raise CorruptEvent(f"the history of account {account_id} does not fold: {exc}") from exc
    if last is None:
        where = f" at {at}" if at is not None else ""
        raise NotFound(f"account {account_id[:64]!r} had no history yet{where}")
    return PastState(state, last)


def state_body(past: PastState) -> dict[str, Any]:
    """The folded state in API form: users, keys with their subnets, the API switch."""
    state = past.state
    users = sorted(state.users.values(), key=lambda u: (u.name.lower(), u.id))
    keys = sorted(state.keys.values(), key=lambda k: k.name)
    return {
        "accountId": state.id,
        "name": state.name,
        "version": state.version,
        "eventId": past.last.entry_id,
        "time": past.last.record["time"],
        "apiEnabled": state.api_enabled,
        "hasAccountKey": state.account_key_id is not None,
        "previousAccountKeyExpiresTimestamp": _time(state.previous_account_key_expires),
        "accountKeysReportedLeaked": len(state.leaked_account_keys),
        "users": [
            {"id": u.id, "name": u.name, "email": u.email, "role": u.role.value} for u in users
        ],
        "apiKeys": [
            {
                "name": k.name,
                "userId": k.user_id,
                "allowedSourceIps": list(k.allowed_source_ips),
                "createdTimestamp": format_time(k.created),
                "description": k.description,
                "enabled": k.enabled,
                "expiresTimestamp": _time(k.expires),
                "previousSecretExpiresTimestamp": _time(k.previous_expires),
            }
            for k in keys
        ],
    }


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


# -- CSV for spreadsheets ------------------------------------------------------------------
def spreadsheet_safe(cell: object) -> object:
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return "" if cell is None else cell


def csv_row(cells: Iterable[object]) -> str:
    """One RFC 4180 line (CRLF-terminated), every cell made ``spreadsheet_safe``."""
    out = io.StringIO()
    csv.writer(out).writerow([spreadsheet_safe(c) for c in cells])
    return out.getvalue()
