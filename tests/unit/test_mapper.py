"""Events to stored records and back: lossless, canonical, and loud about corruption."""

from __future__ import annotations

import dataclasses
import json
import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyledger.domain import events as ev
from keyledger.domain import mapper
from keyledger.domain.mapper import CorruptEvent, from_record, to_record
from tests.unit.builders import NOW, SAMPLES


def test_there_is_a_sample_of_every_event_type() -> None:
    assert set(SAMPLES) == set(ev.EVENT_TYPES)
    for type_name, sample in SAMPLES.items():
        assert type(sample) is ev.EVENT_TYPES[type_name]


@pytest.mark.parametrize("event", SAMPLES.values(), ids=list(SAMPLES))
def test_every_event_type_round_trips_to_an_equal_event(event: ev.Event) -> None:
    assert from_record(to_record(event)) == event


@pytest.mark.parametrize("event", SAMPLES.values(), ids=list(SAMPLES))
def test_record_holds_only_strings(event: ev.Event) -> None:
    record = to_record(event)
    assert set(record) == {"type", "schema", "account", "version", "time", "actor", "data"}
    assert all(isinstance(value, str) for value in record.values())


@pytest.mark.parametrize("event", SAMPLES.values(), ids=list(SAMPLES))
def test_record_names_the_stable_type_and_schema(event: ev.Event) -> None:
    record = to_record(event)
    assert record["type"] == type(event).TYPE
    assert record["schema"] == str(type(event).SCHEMA)


def test_equal_events_give_identical_records() -> None:
    first = SAMPLES["SecretKeyCreated"]
    second = dataclasses.replace(first)
    assert first is not second
    assert to_record(first) == to_record(second)


@pytest.mark.parametrize("event", SAMPLES.values(), ids=list(SAMPLES))
def test_actor_and_data_are_canonical_json(event: ev.Event) -> None:
    record = to_record(event)
    for field in ("actor", "data"):
        parsed = json.loads(record[field])
        canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert record[field] == canonical


def test_same_instant_in_another_timezone_gives_the_same_record() -> None:
    utc = SAMPLES["ApiEnabled"]
    elsewhere = dataclasses.replace(utc, time=NOW.astimezone(timezone(timedelta(hours=5))))
    assert to_record(elsewhere) == to_record(utc)


def test_time_is_stored_as_utc_iso8601_with_milliseconds() -> None:
    event = dataclasses.replace(SAMPLES["ApiEnabled"], time=NOW.replace(microsecond=123456))
    assert to_record(event)["time"] == "2019-03-15T14:26:02.123Z"


def test_actor_fields_left_empty_are_not_stored() -> None:
    operator = dataclasses.replace(SAMPLES["ApiEnabled"], actor=ev.OPERATOR)
    record = to_record(operator)
    assert json.loads(record["actor"]) == {"kind": "operator", "name": "keyledger support"}
    assert from_record(record).actor == ev.OPERATOR


def test_subnet_tuple_comes_back_as_a_tuple() -> None:
    event = from_record(to_record(SAMPLES["SecretKeyCreated"]))
    assert isinstance(event, ev.SecretKeyCreated)
    assert event.allowed_source_ips == ("10.2.5.0/24", "2001:db8::/32")


# -- property: any field values round-trip ---------------------------------------------

texts = st.text(max_size=30)
ms_times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))
actors = st.builds(
    ev.Actor,
    kind=st.sampled_from(["user", "operator"]),
    name=texts,
    user_id=st.none() | texts,
    api_key_name=st.none() | texts,
    source_ip=st.none() | texts,
    request_id=st.none() | texts,
)
FIELD_STRATEGIES: dict[Any, st.SearchStrategy[Any]] = {
    str: texts,
    int: st.integers(min_value=1, max_value=2**53),
    datetime: ms_times,
    datetime | None: st.none() | ms_times,
    ev.Actor: actors,
    tuple[str, ...]: st.lists(texts, max_size=4).map(tuple),
}


@st.composite
def any_event(draw: st.DrawFn) -> ev.Event:
    cls = draw(st.sampled_from(sorted(ev.EVENT_TYPES.values(), key=lambda c: c.TYPE)))
    hints = typing.get_type_hints(cls)
    values = {f.name: draw(FIELD_STRATEGIES[hints[f.name]]) for f in dataclasses.fields(cls)}
    return cls(**values)


@given(any_event())
def test_any_event_with_millisecond_time_round_trips(event: ev.Event) -> None:
    assert from_record(to_record(event)) == event


@given(any_event())
def test_record_of_a_decoded_event_is_byte_identical(event: ev.Event) -> None:
    record = to_record(event)
    assert to_record(from_record(record)) == record


# -- corrupt records --------------------------------------------------------------------


def good_record(**changes: str) -> dict[str, str]:
    record = to_record(SAMPLES["UserAdded"])
    record.update(changes)
    return record


def data_without(field: str) -> str:
    data = json.loads(good_record()["data"])
    del data[field]
    return json.dumps(data)


def data_with(**extra: Any) -> str:
    return json.dumps({**json.loads(good_record()["data"]), **extra})


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(good_record(type="UserCloned"), id="unknown type"),
        pytest.param(good_record(type=""), id="empty type"),
        pytest.param(good_record(data="{not json"), id="bad data json"),
        pytest.param(good_record(actor="{not json"), id="bad actor json"),
        pytest.param(good_record(data="[1, 2]"), id="data not an object"),
        pytest.param(good_record(data="null"), id="data null"),
        pytest.param(good_record(actor='"ada"'), id="actor not an object"),
        pytest.param(good_record(actor='{"kind": "user"}'), id="actor missing name"),
        pytest.param(good_record(actor='{"kind": "user", "name": "a", "x": 1}'), id="actor extra"),
        pytest.param(good_record(data=data_without("email")), id="missing field"),
        pytest.param(good_record(data=data_with(nickname="x")), id="unknown field"),
        pytest.param(good_record(data=data_with(version=99)), id="base field in data"),
        pytest.param(good_record(schema="2"), id="newer schema"),
        pytest.param(good_record(schema="one"), id="schema not a number"),
        pytest.param(good_record(version="seven"), id="version not a number"),
        pytest.param(good_record(time="yesterday"), id="bad time"),
    ],
)
def test_corrupt_record_raises_corrupt_event(record: dict[str, str]) -> None:
    with pytest.raises(CorruptEvent):
        from_record(record)


@pytest.mark.parametrize(
    "missing", ["type", "schema", "account", "version", "time", "actor", "data"]
)
def test_record_missing_a_stored_field_raises_corrupt_event(missing: str) -> None:
    record = good_record()
    del record[missing]
    with pytest.raises(CorruptEvent):
        from_record(record)


def test_corrupt_event_is_a_keyledger_error_with_status_500() -> None:
    from keyledger.domain.errors import KeyledgerError

    with pytest.raises(KeyledgerError) as caught:
        from_record(good_record(type="UserCloned"))
    assert caught.value.status == 500
    assert caught.value.code == "corrupt_event"


# -- schema evolution -------------------------------------------------------------------


def v1_user_added_record() -> dict[str, str]:
    """A UserAdded as schema 1 would have stored it, with ``full_name`` for ``name``."""
    data = json.loads(good_record()["data"])
    data["full_name"] = data.pop("name")
    return good_record(schema="1", data=json.dumps(data))


def rename_full_name(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data["name"] = data.pop("full_name")
    return data


def test_registered_upcaster_brings_an_old_record_up_to_date(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ev.UserAdded, "SCHEMA", 2)
    monkeypatch.setitem(mapper.UPCASTERS, ("UserAdded", 1), rename_full_name)
    event = from_record(v1_user_added_record())
    assert event == SAMPLES["UserAdded"]


def test_upcasters_are_chained_one_schema_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    applied: list[int] = []

    def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
        applied.append(1)
        return rename_full_name(data)

    def v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
        applied.append(2)
        return {**data, "role": data["role"].replace("Read Only", "Viewer")}

    monkeypatch.setattr(ev.UserAdded, "SCHEMA", 3)
    monkeypatch.setitem(mapper.UPCASTERS, ("UserAdded", 1), v1_to_v2)
    monkeypatch.setitem(mapper.UPCASTERS, ("UserAdded", 2), v2_to_v3)
    record = v1_user_added_record()
    record["data"] = record["data"].replace("Viewer", "Read Only")
    event = from_record(record)
    assert applied == [1, 2]
    assert event == SAMPLES["UserAdded"]


def test_current_schema_record_is_not_upcast(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(data: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("upcaster applied to a current record")

    monkeypatch.setattr(ev.UserAdded, "SCHEMA", 2)
    monkeypatch.setitem(mapper.UPCASTERS, ("UserAdded", 1), must_not_run)
    current = to_record(SAMPLES["UserAdded"])
    assert current["schema"] == "2"
    assert from_record(current) == SAMPLES["UserAdded"]


def test_old_record_without_an_upcaster_raises_corrupt_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ev.UserAdded, "SCHEMA", 2)
    with pytest.raises(CorruptEvent):
        from_record(good_record(schema="1"))


def test_upcaster_failure_raises_corrupt_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ev.UserAdded, "SCHEMA", 2)
    monkeypatch.setitem(mapper.UPCASTERS, ("UserAdded", 1), rename_full_name)
    with pytest.raises(CorruptEvent):
        from_record(good_record(schema="1"))  # has no ``full_name``: the upcaster fails


# -- canonical JSON and decoding: orjson where it gives json's exact result ----------------
def json_canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


HOSTILE = [
    "",
    'a "quoted" \\ back\\slash /',
    "".join(chr(c) for c in range(0x20)) + "\x7f\x80\x9f",  # C0, DEL, C1
    "\u2028\u2029 line and paragraph separators",
    "\u202e\u2066\u200b\u00ad\ufeff\ufffe\uffff bidi, zero width, BOM, noncharacters",
    "\U0001f600\U0010ffff astral",
    "\ud800 lone \udfff surrogates",
    "</script><!-- \u0000",
    "é ß 漢字 ﻿",
]
#: Every code point, surrogates included: orjson refuses those and json must take over.
ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()))
FLAT = st.dictionaries(
    ANY_TEXT, ANY_TEXT | st.integers(min_value=-(2**70), max_value=2**70), max_size=8
)


@pytest.mark.parametrize("text", HOSTILE)
def test_canonical_json_of_a_hostile_string_is_json_dumps_output(text: str) -> None:
    value = {"z": text, text: 1, "a": -(2**63), "B": 2**64, "\uffff": text, "\U0001f600": 0}
    assert mapper.canonical_json(value) == json_canonical(value)
    assert mapper.canonical_json({"entry": text}) == json_canonical({"entry": text})


@given(FLAT)
def test_canonical_json_of_a_flat_object_is_json_dumps_output(value: dict[str, Any]) -> None:
    assert mapper.canonical_json(value) == json_canonical(value)


@given(st.recursive(ANY_TEXT | st.integers() | st.booleans() | st.none(), st.lists, max_leaves=6))
def test_canonical_json_of_any_other_value_is_json_dumps_output(value: Any) -> None:
    for wrapped in ({"data": value}, [value], value):
        assert mapper.canonical_json(wrapped) == json_canonical(wrapped)


@pytest.mark.parametrize(
    "text",
    [
        *(json.dumps({"v": t}, ensure_ascii=ascii) for t in HOSTILE for ascii in (True, False)),
        '{"lone":"\\ud800","pair":"\\ud83d\\ude00"}',
        '{"big":123456789012345678901234567890,"neg":-9223372036854775809}',
        '{"nan":NaN,"inf":-Infinity}',
        '{"dup":1,"dup":2}',
        '{"f":1.5e300,"g":0.1,"h":-0.0}',
    ],
)
def test_json_loads_reads_what_json_reads(text: str) -> None:
    ours, theirs = mapper.json_loads(text), json.loads(text)
    assert json.dumps(ours) == json.dumps(theirs)  # NaN != NaN: compare their encodings


@pytest.mark.parametrize("text", ['{"a":', "[1,]", "{'a':1}", '{"a":1}x', ""])
def test_json_loads_refuses_what_json_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        mapper.json_loads(text)


@given(st.datetimes(timezones=st.timezones() | st.just(UTC)))
def test_times_are_formatted_as_iso_8601_utc(moment: datetime) -> None:
    utc = moment.astimezone(UTC)
    assert mapper.format_seconds(moment) == utc.strftime("%Y-%m-%dT%H:%M:%SZ").rjust(20, "0")
    assert mapper.format_time(moment) == (
        utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    )


@pytest.mark.parametrize("event", SAMPLES.values(), ids=list(SAMPLES))
def test_a_decoded_event_is_what_its_constructor_builds_and_stays_frozen(event: ev.Event) -> None:
    decoded = from_record(to_record(event))
    built = type(event)(**{f.name: getattr(event, f.name) for f in dataclasses.fields(event)})
    assert type(decoded) is type(built)
    assert decoded == built and hash(decoded) == hash(built) and repr(decoded) == repr(built)
    assert vars(decoded) == vars(built)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.version = 0  # type: ignore[misc]


def test_a_record_without_a_field_that_has_a_default_decodes_with_the_default() -> None:
    record = to_record(SAMPLES["SecretKeyCreated"])
    data = json.loads(record["data"])
    del data["allowed_source_ips"]
    event = from_record({**record, "data": json.dumps(data)})
    assert isinstance(event, ev.SecretKeyCreated)
    assert event.allowed_source_ips == ()
