"""The auditors' history: one serializer, positions, inclusive ranges, state at a point, CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyledger import history
from keyledger.adapters.eventstore import StoredEvent
from keyledger.domain import commands as cmd
from keyledger.domain import events as ev
from keyledger.domain.errors import NotFound
from keyledger.domain.mapper import CorruptEvent, to_record
from keyledger.history import BadPosition, Position, parse_entry_id, parse_position
from keyledger.web.schemas import StoredEventSchema
from tests.unit.builders import NOW, SAMPLES, registered

MAX_PART = 2**64 - 1


def stored(event: ev.Event, entry_id: str = "1795846140133-0") -> StoredEvent:
    return StoredEvent(entry_id, to_record(event))


class FakeStore:
    """An account stream in memory, read the way ``EventStore`` reads it."""

    def __init__(self, events: list[ev.Event]):
        # Two entries per millisecond, so entry ids have non-zero sequences too.
        self.entries = [
            stored(e, f"{1_795_846_140_000 + i // 2}-{i % 2}") for i, e in enumerate(events)
        ]
        self.reads: list[tuple[str, int]] = []
        self.taken = 0

    def read_account(
        self, account_id: str, after: str = "0", count: int = 1000
    ) -> list[StoredEvent]:
        self.reads.append((after, count))
        lower = (-1, -1) if after == "0" else parse_entry_id(after)
        assert lower is not None
        later = [s for s in self.entries if (parse_entry_id(s.entry_id) or (0, 0)) > lower]
        return later[:count]

    def iter_account(
        self, account_id: str, after: str = "0", batch: int = 1000
    ) -> Iterator[StoredEvent]:
        for entry in self.read_account(account_id, after, 10**9):
            self.taken += 1
            yield entry

    def read_after_version(self, account_id: str, version: int, count: int) -> list[StoredEvent]:
        self.reads.append((f"version {version}", count))
        return [s for s in self.entries if int(s.record["version"]) > version][:count]


def a_history() -> list[ev.Event]:
    """Register, add a user, create two keys, allow a subnet, disable the API: one minute apart."""
    h = registered()
    h.enable_api()
    h.add_user("u-vic", role="Viewer", name="Vic")
    h.create_key("ci-deploy-key", user_id="u-vic")
    h.create_key("ops-key-000001")
    h.run(cmd.AllowSourceSubnet(account_id=h.account_id, name="ops-key-000001", cidr="10.0.0.0/8"))
    h.disable_api()
    return [replace(e, time=NOW + timedelta(minutes=e.version)) for e in h.events]


def versions(entries: Iterator[StoredEvent] | list[StoredEvent]) -> list[int]:
    return [int(s.record["version"]) for s in entries]


# -- the serializer ------------------------------------------------------------------------
@pytest.mark.parametrize("event", SAMPLES.values(), ids=list(SAMPLES))
def test_an_item_has_the_api_shape_and_no_key_hash_or_key_id(event: ev.Event) -> None:
    item = history.history_item(stored(event)).to_json()
    assert list(item) == list(history.COLUMNS)
    assert item["id"] == "1795846140133-0"
    assert item["version"] == event.version
    assert item["type"] == event.TYPE
    assert item["schemaVersion"] == event.SCHEMA
    assert item["time"] == "2019-03-15T14:26:02.000Z"
    assert not {"keyHash", "keyId", "key_hash", "key_id"} & set(item["data"])
    assert "argon2" not in json.dumps(item)


@pytest.mark.parametrize("event", SAMPLES.values(), ids=list(SAMPLES))
def test_the_api_schema_dumps_exactly_what_the_cli_prints(event: ev.Event) -> None:
    item = history.history_item(stored(event))
    assert StoredEventSchema().dump(item) == item.to_json()


def test_item_fields_are_camel_case() -> None:
    item = history.history_item(stored(SAMPLES["SecretKeyCreated"])).to_json()
    assert item["data"] == {
        "name": "ci-deploy-key",
        "userId": "u-owner",
        "userName": "Ada",
        "allowedSourceIps": ["10.2.5.0/24", "2001:db8::/32"],
        "description": "",
        "expires": None,
    }
    assert item["actor"]["apiKeyName"] == "owner-automation"
    assert item["actor"]["sourceIp"] == "10.0.0.1"


def test_csv_cells_hold_actor_and_data_as_compact_json() -> None:
    item = history.history_item(stored(SAMPLES["UserAdded"]))
    cells = item.csv_cells()
    assert cells[:5] == ["1795846140133-0", 7, "UserAdded", 1, "2019-03-15T14:26:02.000Z"]
    assert json.loads(str(cells[6])) == item.data
    assert " " not in str(cells[5]).replace("Ada Owner", "")


def test_a_corrupt_record_is_a_corrupt_event_error() -> None:
    broken = StoredEvent("1-0", {**to_record(SAMPLES["ApiEnabled"]), "data": "{not json"})
    with pytest.raises(CorruptEvent):
        history.history_item(broken)


# -- positions -----------------------------------------------------------------------------
def test_a_number_is_a_version() -> None:
    assert parse_position("12") == Position(version=12)


def test_two_numbers_joined_by_a_dash_are_an_entry_id() -> None:
    assert parse_position("1795846140133-0") == Position(entry=(1795846140133, 0))


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-28T06:09:06Z",
        "2026-11-28T06:09:06+00:00",
        "2026-11-28T07:09:06+01:00",
        "2026-11-28T06:09:06",
        "2026-11-28 06:09:06Z",
    ],
)
def test_iso_times_are_read_as_utc(text: str) -> None:
    assert parse_position(text) == Position(moment=datetime(2026, 11, 28, 6, 9, 6, tzinfo=UTC))


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "9007199254740993",
        "-3",
        "12.5",
        "abc",
        "",
        "2026-11-28",
        "2026-13-45T99:00:00Z",
        "18446744073709551616-0",
        "1-18446744073709551616",
        "1-2-3",
        "yesterday",
    ],
)
def test_text_that_names_no_point_is_refused(text: str) -> None:
    with pytest.raises(BadPosition):
        parse_position(text)


def test_a_bare_date_is_refused_with_a_hint() -> None:
    with pytest.raises(BadPosition, match="give a time too"):
        parse_position("2026-11-28")


@given(st.integers(1, 2**53))
def test_every_version_parses_back(version: int) -> None:
    assert parse_position(str(version)) == Position(version=version)


@given(st.integers(0, MAX_PART), st.integers(0, MAX_PART))
def test_every_entry_id_parses_back(ms: int, seq: int) -> None:
    assert parse_position(f"{ms}-{seq}") == Position(entry=(ms, seq))


@given(st.integers(0, MAX_PART), st.integers(0, MAX_PART))
def test_the_id_before_an_entry_is_its_immediate_predecessor(ms: int, seq: int) -> None:
    before = history.entry_before((ms, seq))
    if (ms, seq) == (0, 0):
        assert before == "0"
        return
    previous = parse_entry_id(before)
    assert previous is not None and previous < (ms, seq)
    following = (previous[0], previous[1] + 1) if previous[1] < MAX_PART else (previous[0] + 1, 0)
    assert following == (ms, seq)


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    for start, until in (("5", "3"), ("9-0", "8-5"), ("2026-11-28T06:00:01Z", "2026-11-28T06Z")):
        with pytest.raises(BadPosition, match="after its end"):
            history.check_range(parse_position(start), parse_position(until))


def test_ranges_of_different_kinds_or_open_ends_are_accepted() -> None:
    history.check_range(parse_position("5"), parse_position("1-0"))
    history.check_range(parse_position("5"), parse_position("5"))
    history.check_range(None, parse_position("5"))
    history.check_range(parse_position("5"), None)


# -- replay --------------------------------------------------------------------------------
def test_replay_without_bounds_is_the_whole_history_in_order() -> None:
    store = FakeStore(a_history())
    assert versions(history.replay(store, "acc-0001")) == list(range(1, 10))


def test_version_bounds_are_inclusive() -> None:
    store = FakeStore(a_history())
    start, until = parse_position("3"), parse_position("6")
    assert versions(history.replay(store, "acc-0001", start, until)) == [3, 4, 5, 6]


def test_entry_id_bounds_are_inclusive_and_the_start_is_read_from_directly() -> None:
    store = FakeStore(a_history())
    third, sixth = store.entries[2].entry_id, store.entries[5].entry_id
    replayed = history.replay(store, "acc-0001", parse_position(third), parse_position(sixth))
    assert versions(replayed) == [3, 4, 5, 6]
    assert store.reads[0][0] == "1795846140000-18446744073709551615"
    assert store.taken == 5  # versions 3 to 7: nothing before the start was read


def test_time_bounds_include_events_at_that_moment() -> None:
    store = FakeStore(a_history())
    at = (NOW + timedelta(minutes=4)).isoformat()
    assert versions(history.replay(store, "acc-0001", until=parse_position(at)))[-1] == 4
    assert versions(history.replay(store, "acc-0001", parse_position(at)))[0] == 4


def test_a_time_between_events_splits_the_history() -> None:
    store = FakeStore(a_history())
    between = parse_position((NOW + timedelta(minutes=4, seconds=30)).isoformat())
    before = versions(history.replay(store, "acc-0001", until=between))
    after = versions(history.replay(store, "acc-0001", between))
    assert before == [1, 2, 3, 4] and after == list(range(5, 10))


def test_replay_stops_reading_at_the_end_of_the_range() -> None:
    store = FakeStore(a_history())
    list(history.replay(store, "acc-0001", until=parse_position("2")))
    assert store.taken == 3


def test_a_range_is_contiguous_even_when_clocks_disagree() -> None:
    events = a_history()
    events[5] = replace(events[5], time=NOW)  # version 6 claims an earlier time than 5
    store = FakeStore(events)
    until = parse_position((NOW + timedelta(minutes=4)).isoformat())
    assert versions(history.replay(store, "acc-0001", until=until)) == [1, 2, 3, 4]
    start = parse_position((NOW + timedelta(minutes=5)).isoformat())
    assert versions(history.replay(store, "acc-0001", start)) == list(range(5, 10))


# -- paging --------------------------------------------------------------------------------
def test_the_first_page_is_one_read_from_the_start() -> None:
    store = FakeStore(a_history())
    assert versions(history.events_after(store, "acc-0001", 0, 4)) == [1, 2, 3, 4]
    assert store.reads == [("0", 4)]


def test_a_valid_cursor_reads_from_its_entry_only() -> None:
    store = FakeStore(a_history())
    cursor = store.entries[3].entry_id
    page = history.events_after(store, "acc-0001", 4, 3, after_id=cursor)
    assert versions(page) == [5, 6, 7]
    assert store.reads == [(store.entries[2].entry_id, 4)]
    assert store.taken == 0


@pytest.mark.parametrize("cursor", [None, "1795846140001-0", "1-0", "999999999999999-0", "x"])
def test_without_a_valid_cursor_the_store_finds_the_version_without_a_scan(
    cursor: str | None,
) -> None:
    store = FakeStore(a_history())
    assert versions(history.events_after(store, "acc-0001", 4, 3, after_id=cursor)) == [5, 6, 7]
    assert store.reads[-1] == ("version 4", 3)
    assert store.taken == 0


def test_a_cursor_past_the_end_gives_an_empty_page() -> None:
    store = FakeStore(a_history())
    last = store.entries[-1].entry_id
    assert history.events_after(store, "acc-0001", 9, 5, after_id=last) == []


# -- state at a point ----------------------------------------------------------------------
def test_state_at_a_version_folds_the_events_through_it() -> None:
    store = FakeStore(a_history())
    past = history.state_at(store, "acc-0001", parse_position("6"))
    assert past.state.version == 6
    assert set(past.state.users) == {"u-owner", "u-vic"}
    assert set(past.state.keys) == {"ci-deploy-key"}
    assert past.last is store.entries[5]


def test_state_without_a_point_is_the_current_state() -> None:
    events = a_history()
    past = history.state_at(FakeStore(events), "acc-0001")
    assert past.state.version == 9 and not past.state.api_enabled


def test_state_before_the_first_event_is_not_found() -> None:
    store = FakeStore(a_history())
    with pytest.raises(NotFound):
        history.state_at(store, "acc-0001", parse_position("2000-01-01T00:00:00Z"))


def test_a_history_with_a_gap_does_not_fold() -> None:
    events = a_history()
    del events[3]
    with pytest.raises(CorruptEvent):
        history.state_at(FakeStore(events), "acc-0001")


def test_state_body_lists_users_keys_subnets_and_the_switches() -> None:
    store = FakeStore(a_history())
    body = history.state_body(history.state_at(store, "acc-0001", parse_position("8")))
    assert body["version"] == 8
    assert body["eventId"] == store.entries[7].entry_id
    assert body["apiEnabled"] is True and body["hasAccountKey"] is True
    assert [u["role"] for u in body["users"]] == ["Owner", "Viewer"]
    assert body["apiKeys"] == [
        {
            "name": "ci-deploy-key",
            "userId": "u-vic",
            "allowedSourceIps": [],
            "createdTimestamp": "2019-03-15T14:32:02.000Z",
            "description": "",
            "enabled": True,
            "expiresTimestamp": None,
            "previousSecretExpiresTimestamp": None,
        },
        {
            "name": "ops-key-000001",
            "userId": "u-owner",
            "allowedSourceIps": ["10.0.0.0/8"],
            "createdTimestamp": "2019-03-15T14:33:02.000Z",
            "description": "",
            "enabled": True,
            "expiresTimestamp": None,
            "previousSecretExpiresTimestamp": None,
        },
    ]
    assert "argon2" not in json.dumps(body)


# -- CSV for spreadsheets ------------------------------------------------------------------
@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_a_spreadsheet_would_run_gets_an_apostrophe(start: str) -> None:
    assert history.spreadsheet_safe(f"{start}HYPERLINK(1)") == f"'{start}HYPERLINK(1)"


@pytest.mark.parametrize("cell", ["Ann", "", "a=b", "2026-11-28T06:09:06Z", " =x", 7, -1])
def test_other_cells_are_left_alone(cell: object) -> None:
    assert history.spreadsheet_safe(cell) == cell


def test_a_missing_cell_is_empty() -> None:
    assert history.spreadsheet_safe(None) == ""


def test_csv_rows_are_crlf_lines_that_quote_what_needs_quoting() -> None:
    line = history.csv_row(["a,b", 'say "hi"', "two\nlines", None, 3, "=1+1"])
    assert line.endswith("\r\n")
    assert next(csv.reader(io.StringIO(line))) == [
        "a,b",
        'say "hi"',
        "two\nlines",
        "",
        "3",
        "'=1+1",
    ]
