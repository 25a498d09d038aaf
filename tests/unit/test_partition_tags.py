"""Where partitions land on a Redis Cluster: the hash tags of the partitions.

A cluster gives each primary a contiguous range of the 16384 slots (``redis-cli
--cluster create`` splits them evenly), so partitions spread over the primaries
as their tags' slots spread over the slot space.
"""

from __future__ import annotations

from collections import Counter

import pytest

from keyledger.adapters.keyspace import SLOTS, Keyspace, slot_of, spread_tag

#: The tags of the default 16 partitions. They are part of every key name written:
#: a change to the rule that makes them would hide every account already stored.
DEFAULT_TAGS = [
    "p00.0a", "p01.0j", "p02.0", "p03.3", "p04.c", "p05.d", "p06.21", "p07.39",
    "p08.2a", "p09.2j", "p10.j", "p11.i", "p12.2h", "p13.2c", "p14.09", "p15.02",
]  # fmt: skip


def even_ranges(primaries: int) -> list[tuple[int, int]]:
    """The slot ranges ``redis-cli --cluster create`` gives ``primaries`` primaries."""
    per, ranges, first, cursor = SLOTS / primaries, [], 0, -0.5
    for index in range(primaries):
        last = round(cursor + per - 1) if index < primaries - 1 else SLOTS - 1
        ranges.append((first, last))
        first, cursor = last + 1, cursor + per
    return ranges


def per_primary(keyspace: Keyspace, primaries: int) -> list[int]:
    counts = [0] * primaries
    for partition in range(keyspace.partitions):
        slot = slot_of(keyspace.partition_tag(partition))
        counts[next(i for i, (a, b) in enumerate(even_ranges(primaries)) if a <= slot <= b)] += 1
    return counts


def test_the_three_even_ranges_are_those_redis_cli_makes() -> None:
    assert even_ranges(3) == [(0, 5460), (5461, 10921), (10922, 16383)]


def test_the_default_tags_are_pinned() -> None:
    assert [Keyspace().partition_tag(p) for p in range(16)] == DEFAULT_TAGS
    assert Keyspace().log(7) == "kl:{p07.39}:log"


def test_sixteen_partitions_cover_three_primaries_five_six_five() -> None:
    assert per_primary(Keyspace(partitions=16), 3) == [5, 6, 5]


def test_the_legacy_tags_leave_a_primary_with_almost_half() -> None:
    """Why the layout changed: CRC16 is linear, so p00..p15 cluster in slot space."""
    assert per_primary(Keyspace(partitions=16, tags="legacy"), 3) == [4, 5, 7]


@pytest.mark.parametrize(
    ("partitions", "primaries"),
    [(16, 6), (16, 9), (24, 3), (24, 6), (48, 12), (64, 5), (128, 9), (256, 16)],
)
def test_partitions_spread_within_one_of_even_over_any_even_ranges(
    partitions: int, primaries: int
) -> None:
    counts = per_primary(Keyspace(partitions=partitions), primaries)
    assert sum(counts) == partitions
    assert max(counts) - min(counts) <= 1, counts


@pytest.mark.parametrize("partitions", [1, 2, 3, 5, 7, 16, 31, 100, 255, 256])
def test_each_tag_lies_near_the_middle_of_its_share(partitions: int) -> None:
    share = SLOTS / partitions
    for partition in range(partitions):
        tag = spread_tag(partition, partitions)
        assert tag.startswith(f"p{partition:02d}.")
        middle = (partition + 0.5) * share
        assert abs(slot_of(tag) - middle) <= share / 4 + 1, (partition, tag)


def test_the_legacy_layout_keeps_the_keys_written_before_it() -> None:
    legacy = Keyspace("kl", 16, "legacy")
    assert legacy.log(7) == "kl:{p07}:log"
    assert legacy.auth_key("07abcdef01234567") == "kl:{p07}:auth:key:07abcdef01234567"


def test_a_spread_key_is_recognised_as_a_projection_key() -> None:
    keys = Keyspace("kl", 16)
    found = keys.projection_of(keys.auth_account("acct"))
    assert found is not None and found.partition == keys.partition_of("acct")
    assert keys.projection_of(keys.log(3)) is None


def test_a_shadow_keeps_the_tags_and_slots_of_its_live_keys() -> None:
    keys = Keyspace("kl", 16)
    shadow = keys.shadow("auth")
    assert shadow.tags == keys.tags
    live = keys.auth_account("acct")
    assert tag_of(keys.translate(live, shadow)) == tag_of(live)


def tag_of(key: str) -> str:
    return key.split("{", 1)[1].split("}", 1)[0]


def test_an_unknown_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="layout"):
        Keyspace("kl", 16, "clustered")


def test_no_two_partitions_share_a_slot() -> None:
    keys = Keyspace("kl", 16)
    slots = Counter(slot_of(keys.partition_tag(p)) for p in range(16))
    assert len(slots) == 16 and slots.most_common(1)[0][1] == 1
