"""The audit feed's order and cursor (keyledger.feed): pure, no Redis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyledger import feed
from keyledger.feed import ORIGIN, BadCursor, Merge, decode, encode

ids = st.tuples(st.integers(0, 2**63), st.integers(0, 2**40))


@given(st.lists(st.one_of(st.just(ORIGIN), ids), min_size=1, max_size=32))
def test_a_cursor_holds_every_partition_position(positions: list[feed.StreamId]) -> None:
    assert decode(encode(positions), len(positions)) == positions


def test_a_cursor_is_short_when_partitions_are_close_in_time() -> None:
    positions = [(1796062813743 - i, i % 2) for i in range(16)]
    cursor = encode(positions)
    assert len(cursor) < 70
    assert cursor.startswith("c1:")


@pytest.mark.parametrize(
    "text",
    ["", "c1", "c2:10:0", "c1:zz:0", "c1:10:11", "c1:10:-1", "c1:10:0-x", "1796062813743-0"],
)
def test_a_malformed_cursor_is_refused(text: str) -> None:
    with pytest.raises(BadCursor):
        decode(text, 1)


def test_a_cursor_of_another_partition_count_is_refused_naming_both() -> None:
    with pytest.raises(BadCursor, match="holds 2 partitions, the log has 4"):
        decode(encode([(5, 0), (6, 0)]), 4)


def entries(*ids: str) -> list[tuple[str, dict[str, str]]]:
    return [(i, {"n": i}) for i in ids]


def drain(merge: Merge, watermark: int) -> list[tuple[int, str]]:
    return [(e.partition, e.entry_id) for e in merge.ready(watermark)]


def test_entries_come_in_id_order_across_partitions_ties_by_partition() -> None:
    merge = Merge([ORIGIN] * 3, frozenset({0, 1, 2}))
    merge.add(0, entries("5-0", "9-0"), end_at=100)
    merge.add(1, entries("5-0", "7-0"), end_at=100)
    merge.add(2, [], end_at=100)

    assert drain(merge, 100) == [(0, "5-0"), (1, "5-0"), (1, "7-0"), (0, "9-0")]
    assert merge.positions == [(9, 0), (7, 0), ORIGIN]


def test_entries_at_or_after_the_watermark_are_held_back() -> None:
    merge = Merge([ORIGIN] * 2, frozenset({0, 1}))
    merge.add(0, entries("5-0", "10-0"), end_at=10)
    merge.add(1, [], end_at=10)

    assert drain(merge, 10) == [(0, "5-0")]
    assert merge.waiting
    merge.add(1, entries("10-0"), end_at=11)
    # Partition 0 was last read to its end at 10: until it is read again, nothing of
    # millisecond 10 or later passes.
    assert drain(merge, 11) == [(0, "10-0")]
    merge.add(0, entries("10-1"), end_at=11)
    assert drain(merge, 11) == [(1, "10-0"), (0, "10-1")]


def test_nothing_passes_a_partition_that_was_not_read_to_its_end() -> None:
    merge = Merge([ORIGIN] * 2, frozenset({0, 1}))
    merge.add(0, entries("5-0"), end_at=100)
    merge.add(1, entries("1-0"), end_at=None)  # a full batch: more may follow

    assert drain(merge, 100) == [(1, "1-0")]  # then stops: partition 1 may hold 2..4
    assert merge.needs_reading() == [1]
    merge.add(1, entries("6-0"), end_at=100)
    assert drain(merge, 100) == [(0, "5-0"), (1, "6-0")]


def test_an_end_seen_earlier_bounds_what_passes_until_read_again() -> None:
    merge = Merge([ORIGIN] * 2, frozenset({0, 1}))
    merge.add(0, entries("50-0"), end_at=100)
    merge.add(1, [], end_at=40)  # read to its end at 40: it may have entries from 40 on

    assert drain(merge, 100) == []
    merge.add(1, entries("45-0"), end_at=100)
    assert drain(merge, 100) == [(1, "45-0"), (0, "50-0")]


def test_a_late_entry_with_a_smaller_id_is_printed_late_not_lost() -> None:
    """Stream ids are per stream: partition 0 may append 3-0 after 5-0 of partition 1
    was printed (a clock stepped back). The vector cursor still reads it."""
    merge = Merge([ORIGIN] * 2, frozenset({0, 1}))
    merge.add(0, entries("1-0"), end_at=10)
    merge.add(1, entries("5-0"), end_at=10)
    assert drain(merge, 10) == [(0, "1-0"), (1, "5-0")]
    cursor = merge.cursor()

    merge.add(0, entries("3-0"), end_at=11)  # appended after 5-0 was printed
    assert drain(merge, 11) == [(0, "3-0")]

    resumed = Merge(decode(cursor, 2), frozenset({0, 1}))
    assert resumed.read_to == [(1, 0), (5, 0)]  # partition 0 is read after 1-0: 3-0 comes


def test_resuming_from_any_printed_cursor_repeats_nothing_and_skips_nothing() -> None:
    log = {0: ["1-0", "4-0", "4-1", "9-0"], 1: ["2-0", "4-0", "8-0"], 2: ["3-0"]}
    whole = Merge([ORIGIN] * 3, frozenset(log))
    for partition, ids_ in log.items():
        whole.add(partition, entries(*ids_), end_at=100)
    printed = []
    for entry in whole.ready(100):
        printed.append(((entry.partition, entry.entry_id), whole.cursor()))

    for index, (_, cursor) in enumerate(printed):
        again = Merge(decode(cursor, 3), frozenset(log))
        for partition, ids_ in log.items():
            again.add(partition, entries(*ids_), end_at=100)  # the read returns it all again
        rest = drain(again, 100)
        assert rest == [p for p, _ in printed[index + 1 :]]


def test_a_read_returned_twice_is_buffered_once() -> None:
    merge = Merge([ORIGIN], frozenset({0}))
    merge.add(0, entries("1-0", "2-0"), end_at=None)
    merge.add(0, entries("1-0", "2-0", "3-0"), end_at=100)
    assert drain(merge, 100) == [(0, "1-0"), (0, "2-0"), (0, "3-0")]


def test_caught_up_means_nothing_below_the_watermark_is_left() -> None:
    merge = Merge([ORIGIN] * 2, frozenset({0, 1}))
    assert not merge.caught_up(10)
    merge.add(0, entries("12-0"), end_at=10)
    merge.add(1, [], end_at=10)
    assert merge.caught_up(10)
    assert drain(merge, 10) == []
