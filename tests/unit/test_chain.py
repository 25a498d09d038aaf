"""The hash chain: a precise, stable hash per record and a checker that names the first break."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Mapping

import pytest

from keyledger.domain.chain import (
    GENESIS,
    BrokenLink,
    Head,
    Link,
    canonical_bytes,
    chained,
    check_account,
    check_expected,
    check_head,
    check_log_entry,
    link_hash,
)
from keyledger.domain.errors import InvalidInput
from keyledger.domain.mapper import to_record
from tests.unit.builders import ACCOUNT_ID, SAMPLES

KEY = "kl:{p00}:acct:acc-0001:events"
LOG = "kl:{p00}:log"
HEAD_KEY = "kl:{p00}:acct:acc-0001:head"

OPERATOR_RECORD = {
    "type": "ApiEnabled",
    "schema": "1",
    "account": "acc-1",
    "version": "1",
    "time": "2019-03-15T14:26:02.000Z",
    "actor": '{"kind":"operator","name":"keyledger support"}',
    "data": "{}",
}


def history(length: int) -> list[tuple[str, dict[str, str]]]:
    """A chained account history of ``length`` events, with stream entry ids."""
    samples = list(SAMPLES.values())
    events = [
        dataclasses.replace(samples[i % len(samples)], account_id=ACCOUNT_ID, version=i + 1)
        for i in range(length)
    ]
    records = chained([to_record(e) for e in events], GENESIS)
    return [(f"{1000 + i}-0", record) for i, record in enumerate(records)]


def links_of(entries: list[tuple[str, dict[str, str]]]) -> list[Link]:
    result = check_account(ACCOUNT_ID, KEY, entries)
    assert isinstance(result, list)
    return result


def broken(result: list[Link] | BrokenLink | None) -> BrokenLink:
    assert isinstance(result, BrokenLink), result
    return result


# -- the hash ---------------------------------------------------------------------------


def test_hash_is_sha256_of_prev_then_canonical_json_of_the_other_fields() -> None:
    record = {**OPERATOR_RECORD, "prev": GENESIS}
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":")).encode("ascii")
    assert canonical_bytes(record) == canonical
    assert link_hash(GENESIS, record) == hashlib.sha256(GENESIS.encode() + canonical).hexdigest()


def test_hash_of_a_known_record_never_changes() -> None:
    record = {**OPERATOR_RECORD, "prev": GENESIS}
    assert link_hash(GENESIS, record) == (
        "777a5ed8794beef4f2da637d45212ee0aa001b966dae21d92851551f412dc7c0"
    )


def test_genesis_is_64_zeros() -> None:
    assert GENESIS == "0" * 64


def test_canonical_bytes_leave_out_the_hash_and_keep_prev() -> None:
    record = {**OPERATOR_RECORD, "prev": GENESIS, "hash": "f" * 64}
    parsed = json.loads(canonical_bytes(record))
    assert "hash" not in parsed
    assert parsed["prev"] == GENESIS


def test_field_order_does_not_change_the_hash() -> None:
    reversed_record = dict(reversed(list(OPERATOR_RECORD.items())))
    assert link_hash(GENESIS, reversed_record) == link_hash(GENESIS, OPERATOR_RECORD)


def test_non_ascii_text_is_escaped_so_the_bytes_are_unambiguous() -> None:
    record = {**OPERATOR_RECORD, "data": '{"name":"Zoë"}'}
    assert b"\\u00eb" in canonical_bytes(record)


@pytest.mark.parametrize("field", sorted(OPERATOR_RECORD))
def test_changing_any_field_changes_the_hash(field: str) -> None:
    changed = {**OPERATOR_RECORD, field: OPERATOR_RECORD[field] + "x"}
    assert link_hash(GENESIS, changed) != link_hash(GENESIS, OPERATOR_RECORD)


def test_a_different_predecessor_gives_a_different_hash() -> None:
    assert link_hash("1" * 64, OPERATOR_RECORD) != link_hash(GENESIS, OPERATOR_RECORD)


def test_chained_links_each_record_to_the_one_before() -> None:
    records = [record for _, record in history(4)]
    assert records[0]["prev"] == GENESIS
    for before, after in itertools.pairwise(records):
        assert after["prev"] == before["hash"]
    for record in records:
        assert record["hash"] == link_hash(record["prev"], record)


def test_chained_continues_from_the_given_head_and_leaves_its_input_alone() -> None:
    record = dict(OPERATOR_RECORD)
    [linked] = chained([record], "a" * 64)
    assert linked["prev"] == "a" * 64
    assert "prev" not in record and "hash" not in record


def test_chained_replaces_a_stale_prev_and_hash() -> None:
    stale = {**OPERATOR_RECORD, "prev": "b" * 64, "hash": "c" * 64}
    [linked] = chained([stale], GENESIS)
    assert linked == chained([OPERATOR_RECORD], GENESIS)[0]


# -- the account stream -------------------------------------------------------------------


def test_an_intact_history_verifies_and_gives_its_links() -> None:
    entries = history(6)
    links = links_of(entries)
    assert [link.entry_id for link in links] == [entry_id for entry_id, _ in entries]
    assert [link.hash for link in links] == [record["hash"] for _, record in entries]


def test_an_empty_history_verifies() -> None:
    assert check_account(ACCOUNT_ID, KEY, []) == []


def test_an_edited_entry_is_named() -> None:
    entries = history(5)
    entries[2][1]["data"] = '{"edited":true}'
    found = broken(check_account(ACCOUNT_ID, KEY, entries))
    assert (found.version, found.entry_id, found.stream, found.key) == (3, "1002-0", "account", KEY)
    assert "edited" in found.reason


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link() -> None:
    entries = history(5)
    record = entries[2][1]
    record["time"] = "2000-01-01T00:00:00.000Z"
    record["hash"] = link_hash(record["prev"], record)
    found = broken(check_account(ACCOUNT_ID, KEY, entries))
    assert (found.version, found.entry_id) == (4, "1003-0")
    assert "does not link to its predecessor (entry 1002-0)" in found.reason


def test_a_deleted_entry_is_named_by_the_missing_version() -> None:
    entries = history(5)
    del entries[2]
    found = broken(check_account(ACCOUNT_ID, KEY, entries))
    assert (found.version, found.entry_id) == (3, "1003-0")
    assert "version 3 is missing" in found.reason and "deleted" in found.reason


def test_a_deleted_first_entry_is_named() -> None:
    found = broken(check_account(ACCOUNT_ID, KEY, history(3)[1:]))
    assert (found.version, found.entry_id) == (1, "1001-0")


def test_reordered_entries_are_named() -> None:
    entries = history(5)
    entries[1], entries[2] = (entries[1][0], entries[2][1]), (entries[2][0], entries[1][1])
    found = broken(check_account(ACCOUNT_ID, KEY, entries))
    assert (found.version, found.entry_id) == (2, "1001-0")
    assert "reordered" in found.reason and "1002-0" in found.reason


def test_an_inserted_entry_with_a_bad_hash_is_named() -> None:
    entries = history(4)
    intruder = {**entries[1][1], "data": '{"edited":true}'}
    entries.insert(2, ("1001-5", intruder))
    found = broken(check_account(ACCOUNT_ID, KEY, entries))
    assert (found.version, found.entry_id) == (3, "1001-5")


def test_a_well_forged_inserted_entry_is_caught_where_the_real_one_follows() -> None:
    entries = history(4)
    forged = chained([{**entries[2][1], "data": '{"forged":true}'}], entries[1][1]["hash"])[0]
    entries.insert(2, ("1001-5", forged))
    found = broken(check_account(ACCOUNT_ID, KEY, entries))
    assert (found.version, found.entry_id) == (4, "1002-0")
    assert "version 3 again" in found.reason and "1001-5" in found.reason


def test_an_entry_of_another_account_is_named() -> None:
    entries = history(3)
    entries[1][1]["account"] = "someone-else"
    found = broken(check_account(ACCOUNT_ID, KEY, entries))
    assert (found.version, found.entry_id) == (2, "1001-0")
    assert "someone-else" in found.reason


def test_a_history_not_starting_from_genesis_is_broken() -> None:
    records = chained([record for _, record in history(2)], "9" * 64)
    found = broken(check_account(ACCOUNT_ID, KEY, list(zip(["1-0", "2-0"], records, strict=True))))
    assert (found.version, found.entry_id) == (1, "1-0")
    assert "genesis" in found.reason


@pytest.mark.parametrize(
    ("field", "value"), [("hash", None), ("prev", "xyz"), ("version", "seven"), ("version", "0")]
)
def test_an_unchained_record_is_named(field: str, value: str | None) -> None:
    entries = history(3)
    if value is None:
        del entries[1][1][field]
    else:
        entries[1][1][field] = value
    found = broken(check_account(ACCOUNT_ID, KEY, entries))
    assert (found.version, found.entry_id) == (2, "1001-0")
    assert "not a chained event record" in found.reason


# -- the heads ------------------------------------------------------------------------------


def test_a_head_matching_the_last_link_verifies() -> None:
    links = links_of(history(3))
    assert check_head(ACCOUNT_ID, KEY, HEAD_KEY, links, Head(3, links[-1].hash)) is None


def test_no_head_and_no_history_is_an_unknown_account() -> None:
    assert check_head(ACCOUNT_ID, KEY, HEAD_KEY, [], None) is None


def test_a_missing_head_is_a_break() -> None:
    assert (
        broken(check_head(ACCOUNT_ID, KEY, HEAD_KEY, links_of(history(2)), None)).stream == "head"
    )


def test_deleted_last_entries_are_caught_by_the_head() -> None:
    links = links_of(history(3))
    found = broken(check_head(ACCOUNT_ID, KEY, HEAD_KEY, links, Head(5, "a" * 64)))
    assert (found.version, found.entry_id, found.key) == (4, None, KEY)
    assert "deleted" in found.reason


def test_entries_appended_behind_the_heads_back_are_named() -> None:
    links = links_of(history(4))
    found = broken(check_head(ACCOUNT_ID, KEY, HEAD_KEY, links, Head(2, links[1].hash)))
    assert (found.version, found.entry_id) == (3, "1002-0")


def test_a_head_with_another_hash_is_named() -> None:
    links = links_of(history(3))
    found = broken(check_head(ACCOUNT_ID, KEY, HEAD_KEY, links, Head(3, "a" * 64)))
    assert (found.version, found.entry_id, found.stream, found.key) == (
        3,
        "1002-0",
        "head",
        HEAD_KEY,
    )


def test_an_expected_head_still_in_the_chain_verifies() -> None:
    links = links_of(history(5))
    assert check_expected(ACCOUNT_ID, KEY, links, Head(3, links[2].hash)) is None


def test_a_rewritten_chain_does_not_hold_the_expected_head() -> None:
    links = links_of(history(5))
    found = broken(check_expected(ACCOUNT_ID, KEY, links, Head(3, "a" * 64)))
    assert (found.version, found.entry_id, found.stream) == (3, "1002-0", "expected")
    assert "rewritten" in found.reason


def test_a_chain_shorter_than_the_expected_head_is_broken() -> None:
    links = links_of(history(2))
    found = broken(check_expected(ACCOUNT_ID, KEY, links, Head(3, "a" * 64)))
    assert (found.version, found.entry_id) == (3, None)


def test_a_head_is_written_and_parsed_as_version_colon_hash() -> None:
    assert Head.parse(f"12:{'ab' * 32}") == Head(12, "ab" * 32)


@pytest.mark.parametrize(
    "text", ["", "12", f"0:{'a' * 64}", f"x:{'a' * 64}", "3:abc", f"3:{'A' * 64}"]
)
def test_a_malformed_expected_head_is_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput):
        Head.parse(text)


# -- the partition log ----------------------------------------------------------------------


def log_check(links: list[Link], position: int, record: Mapping[str, str]) -> BrokenLink | None:
    return check_log_entry(ACCOUNT_ID, LOG, position, "2000-0", record, links)


def test_log_entries_equal_to_the_account_stream_verify() -> None:
    entries = history(3)
    links = links_of(entries)
    for position, (_, record) in enumerate(entries):
        assert log_check(links, position, record) is None


def test_an_edited_log_entry_is_named() -> None:
    entries = history(3)
    found = broken(log_check(links_of(entries), 1, {**entries[1][1], "data": '{"edited":true}'}))
    assert (found.version, found.entry_id, found.stream, found.key) == (2, "2000-0", "log", LOG)
    assert "edited" in found.reason


def test_a_log_entry_rehashed_after_an_edit_differs_from_the_account_stream() -> None:
    entries = history(3)
    [forged] = chained([{**entries[1][1], "data": '{"edited":true}'}], entries[0][1]["hash"])
    found = broken(log_check(links_of(entries), 1, forged))
    assert "differs from version 2 of the account stream" in found.reason


def test_a_deleted_log_entry_is_named() -> None:
    entries = history(3)
    found = broken(log_check(links_of(entries), 1, entries[2][1]))
    assert found.version == 2 and "missing from the log" in found.reason


def test_a_duplicated_log_entry_is_named() -> None:
    entries = history(3)
    found = broken(log_check(links_of(entries), 2, entries[1][1]))
    assert found.version == 3 and "inserted" in found.reason


def test_a_log_entry_beyond_the_account_stream_is_named() -> None:
    entries = history(3)
    found = broken(log_check(links_of(entries[:2]), 2, entries[2][1]))
    assert found.version == 3 and "account stream ends at version 2" in found.reason


def test_a_broken_link_reads_as_a_sentence_and_a_json_object() -> None:
    link = BrokenLink(ACCOUNT_ID, 3, "1002-0", "account", KEY, "edited")
    assert link.describe() == f"account {ACCOUNT_ID}, version 3, entry 1002-0 of {KEY}: edited"
    assert link.as_dict() == {
        "accountId": ACCOUNT_ID,
        "version": 3,
        "entryId": "1002-0",
        "stream": "account",
        "key": KEY,
        "reason": "edited",
    }
