"""Tamper evidence on a real Redis: the chain is written atomically and every tampering is named.

The attacker has Redis access: they ``XDEL`` entries, or ``DEL`` a stream and
``XADD`` its entries again with the same explicit ids but edited, inserted or
swapped content.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis
from click.testing import CliRunner

from keyledger.adapters.audit import AuditReport, ChainAuditor
from keyledger.adapters.eventstore import EventStore
from keyledger.bootstrap import Container
from keyledger.cli import main
from keyledger.domain import events as ev
from keyledger.domain.chain import GENESIS, BrokenLink, ChainBroken, Head, chained, link_hash
from keyledger.domain.errors import ConcurrencyConflict, NotFound
from keyledger.domain.events import OPERATOR
from tests.integration.helpers import Bootstrapped, bootstrap

Entries = list[tuple[str, dict[str, str]]]


@pytest.fixture
def quick(container: Container) -> Container:
    """Changes are recorded without waiting for a projector (none runs here)."""
    container.ledger.apply_timeout = 0.0
    return container


@pytest.fixture
def acme(quick: Container) -> Bootstrapped:
    """An account with 7 events: registered, owner, API on, account key, 2 keys, a subnet."""
    b = bootstrap(quick)
    quick.ledger.create_secret_key(b.account_id, "second-key-01", b.owner_id, (), OPERATOR)
    quick.ledger.allow_subnet(b.account_id, "second-key-01", "10.2.5.0/24", OPERATOR)
    return b


def auditor(container: Container) -> ChainAuditor:
    return ChainAuditor(container.store)


def first_break(container: Container, account_id: str | None = None) -> BrokenLink:
    report = auditor(container).verify(account_id)
    assert report.first is not None, "tampering went unnoticed"
    return report.first


def read(client: redis.Redis, key: str) -> Entries:
    return [(entry_id, dict(fields)) for entry_id, fields in client.xrange(key)]


def rewrite(client: redis.Redis, key: str, change: Callable[[Entries], Entries]) -> Entries:
    """DEL the stream and XADD ``change(entries)`` again with their explicit ids."""
    entries = change(read(client, key))
    client.delete(key)
    for entry_id, fields in entries:
        client.xadd(key, fields, id=entry_id)
    return entries


def id_after(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq) + 1}"


def order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def insert_after(entries: Entries, index: int, fields: dict[str, str]) -> Entries:
    """``entries`` with ``fields`` added right after ``entries[index]``. Two entries often
    share a millisecond with consecutive ids (no id lies between them): the entries after
    the insertion then take the next ids in turn, as a rewrite of the stream may."""
    out = [*entries[: index + 1], (id_after(entries[index][0]), fields)]
    for entry_id, kept in entries[index + 1 :]:
        if order(entry_id) <= order(out[-1][0]):
            entry_id = id_after(out[-1][0])
        out.append((entry_id, kept))
    return out


def test_an_entry_is_inserted_between_two_of_the_same_millisecond() -> None:
    entries: Entries = [("5-0", {"n": "a"}), ("5-1", {"n": "b"}), ("6-0", {"n": "c"})]
    changed = insert_after(entries, 0, {"n": "x"})
    assert [f["n"] for _, f in changed] == ["a", "x", "b", "c"]
    assert [i for i, _ in changed] == ["5-0", "5-1", "5-2", "6-0"]


def account_key(container: Container, b: Bootstrapped) -> str:
    return container.keyspace.account_events(b.account_id)


def log_key(container: Container, b: Bootstrapped) -> str:
    return container.keyspace.log(container.keyspace.partition_of(b.account_id))


def entry_of(client: redis.Redis, key: str, version: int, account_id: str) -> str:
    return next(
        entry_id
        for entry_id, fields in client.xrange(key)
        if fields.get("account") == account_id and fields.get("version") == str(version)
    )


# -- writing the chain -----------------------------------------------------------------------


def test_every_entry_of_both_streams_carries_prev_and_hash(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    own = read(redis_client, account_key(quick, acme))
    logged = [
        e for e in read(redis_client, log_key(quick, acme)) if e[1]["account"] == acme.account_id
    ]
    assert [fields for _, fields in own] == [fields for _, fields in logged]
    prev = GENESIS
    for _, fields in own:
        assert fields["prev"] == prev
        assert fields["hash"] == link_hash(prev, fields)
        prev = fields["hash"]


def test_the_head_holds_the_version_and_hash_of_the_last_entry(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    last = read(redis_client, account_key(quick, acme))[-1][1]
    head = redis_client.hgetall(quick.keyspace.account_head(acme.account_id))
    assert head == {"version": last["version"], "hash": last["hash"]}
    assert auditor(quick).head(acme.account_id) == Head(7, last["hash"])


def test_events_still_read_back_equal(quick: Container, acme: Bootstrapped) -> None:
    events = [s.event for s in quick.store.read_account(acme.account_id)]
    assert [e.version for e in events] == list(range(1, 8))
    assert quick.ledger.state(acme.account_id).version == 7


def disabled(b: Bootstrapped, version: int) -> ev.Event:
    return ev.ApiDisabled(
        account_id=b.account_id, version=version, time=datetime.now(UTC), actor=OPERATOR
    )


def test_an_append_is_refused_unless_the_head_holds_the_hash_it_chains_from(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    redis_client.hset(quick.keyspace.account_head(acme.account_id), "hash", "f" * 64)
    with pytest.raises(ConcurrencyConflict):
        quick.store.append(acme.account_id, 7, [disabled(acme, 8)])
    assert redis_client.xlen(account_key(quick, acme)) == 7


def test_a_writer_that_did_not_see_the_last_change_reads_the_head(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    elsewhere = EventStore(redis_client, quick.keyspace)
    elsewhere.append(acme.account_id, 7, [disabled(acme, 8)])
    assert auditor(quick).verify().ok


def test_a_writer_with_a_stale_memory_cannot_fork_the_chain(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    stale = EventStore(redis_client, quick.keyspace)
    stale.read_account(acme.account_id)
    quick.store.append(acme.account_id, 7, [disabled(acme, 8)])
    with pytest.raises(ConcurrencyConflict):
        stale.append(acme.account_id, 7, [disabled(acme, 8)])
    assert auditor(quick).verify().ok and quick.store.version(acme.account_id) == 8


def test_concurrent_appends_at_the_same_version_cannot_fork_the_chain(
    quick: Container, redis_client: redis.Redis
) -> None:
    account_id, writers, rounds = "race-account", 8, 25
    barrier = threading.Barrier(
        writers, timeout=30
    )  # a stuck writer fails the test, never hangs it
    winners: list[list[int]] = [[] for _ in range(rounds)]

    def write(writer: int) -> None:
        store = EventStore(redis_client, quick.keyspace)  # one per writer, like processes
        actor = replace(OPERATOR, name=f"writer {writer}")
        for version in range(rounds):
            barrier.wait()
            event: ev.Event = (
                ev.AccountRegistered(
                    account_id=account_id,
                    version=1,
                    time=datetime.now(UTC),
                    actor=actor,
                    name=f"by {writer}",
                    owner_user_id="u1",
                )
                if version == 0
                else ev.ApiEnabled(
                    account_id=account_id, version=version + 1, time=datetime.now(UTC), actor=actor
                )
            )
            try:
                store.append(account_id, version, [event])
                winners[version].append(writer)
            except ConcurrencyConflict:
                pass

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [len(won) for won in winners] == [1] * rounds
    entries = read(redis_client, quick.keyspace.account_events(account_id))
    assert [json.loads(f["actor"])["name"] for _, f in entries] == [
        f"writer {won[0]}" for won in winners
    ]
    report = auditor(quick).verify(account_id)
    assert report.ok and report.events == rounds


# -- an intact history -------------------------------------------------------------------------


def test_an_intact_history_verifies(quick: Container, acme: Bootstrapped) -> None:
    other = bootstrap(quick, "Other")
    quick.ledger.disable_api(other.account_id, OPERATOR)
    report = auditor(quick).verify()
    assert report.ok, report.first
    assert (report.accounts, report.events, report.log_entries) == (2, 13, 13)
    assert auditor(quick).verify(acme.account_id).as_dict() == {
        "ok": True,
        "accounts": 1,
        "events": 7,
        "logEntries": 7,
        "partitions": quick.keyspace.partitions,
    }


def test_an_empty_store_verifies(quick: Container) -> None:
    report = auditor(quick).verify()
    assert report.ok and (report.accounts, report.events) == (0, 0)


def test_an_unknown_account_is_not_found(quick: Container) -> None:
    with pytest.raises(NotFound):
        auditor(quick).verify("no-such-account")
    with pytest.raises(NotFound):
        auditor(quick).head("no-such-account")


# -- tampering with an account stream ----------------------------------------------------------


def test_an_edited_entry_is_named(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    def widen_subnet(entries: Entries) -> Entries:
        entries[6][1]["data"] = entries[6][1]["data"].replace("10.2.5.0/24", "0.0.0.0/0")
        return entries

    entries = rewrite(redis_client, account_key(quick, acme), widen_subnet)
    found = first_break(quick)
    assert (found.account, found.version, found.entry_id) == (acme.account_id, 7, entries[6][0])
    assert found.stream == "account" and "edited" in found.reason


def test_an_edited_entry_with_recomputed_hashes_is_named_where_the_chain_breaks(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    def promote(entries: Entries) -> Entries:
        record = entries[1][1]
        record["data"] = record["data"].replace('"Owner"', '"Viewer"')
        record["hash"] = link_hash(record["prev"], record)
        return entries

    entries = rewrite(redis_client, account_key(quick, acme), promote)
    found = first_break(quick, acme.account_id)
    assert (found.version, found.entry_id) == (3, entries[2][0])
    assert entries[1][0] in found.reason


def test_a_deleted_entry_is_named(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    key = account_key(quick, acme)
    entries = read(redis_client, key)
    redis_client.xdel(key, entries[4][0])
    found = first_break(quick)
    assert (found.account, found.version, found.entry_id) == (acme.account_id, 5, entries[5][0])
    assert "version 5 is missing" in found.reason


def test_a_deleted_last_entry_is_named(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    key = account_key(quick, acme)
    redis_client.xdel(key, read(redis_client, key)[-1][0])
    found = first_break(quick, acme.account_id)
    assert (found.version, found.entry_id, found.stream) == (7, None, "account")
    assert "deleted" in found.reason


def test_an_inserted_entry_is_named(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    inserted: list[str] = []

    def insert_an_owner(entries: Entries) -> Entries:
        intruder = {**entries[1][1], "data": entries[1][1]["data"].replace("Ann", "Eve")}
        changed = insert_after(entries, 1, intruder)
        inserted.append(changed[2][0])
        return changed

    rewrite(redis_client, account_key(quick, acme), insert_an_owner)
    found = first_break(quick)
    assert (found.version, found.entry_id) == (3, inserted[0])


def test_a_forged_inserted_entry_is_named_where_the_real_successor_follows(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    def insert_forged(entries: Entries) -> Entries:
        template = {k: v for k, v in entries[2][1].items() if k not in ("prev", "hash")}
        [forged] = chained([{**template, "type": "ApiDisabled"}], entries[1][1]["hash"])
        return insert_after(entries, 1, forged)

    entries = rewrite(redis_client, account_key(quick, acme), insert_forged)
    found = first_break(quick)
    assert (found.version, found.entry_id) == (4, entries[3][0])
    assert "version 3 again" in found.reason and entries[2][0] in found.reason


def test_reordered_entries_are_named(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    def swap(entries: Entries) -> Entries:
        (first_id, first), (second_id, second) = entries[4], entries[5]
        entries[4], entries[5] = (first_id, second), (second_id, first)
        return entries

    entries = rewrite(redis_client, account_key(quick, acme), swap)
    found = first_break(quick)
    assert (found.version, found.entry_id) == (5, entries[4][0])
    assert "reordered" in found.reason


def test_a_tampered_head_is_named(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    redis_client.hset(quick.keyspace.account_head(acme.account_id), "hash", "a" * 64)
    found = first_break(quick)
    assert (found.version, found.stream) == (7, "head")
    with pytest.raises(ChainBroken):
        auditor(quick).head(acme.account_id)


def test_a_malformed_head_is_named(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    redis_client.hset(quick.keyspace.account_head(acme.account_id), "version", "seven")
    for account_id in (None, acme.account_id):
        found = first_break(quick, account_id)
        assert (found.account, found.stream) == (acme.account_id, "head")
    with pytest.raises(ChainBroken):
        auditor(quick).head(acme.account_id)


def test_a_deleted_account_stream_is_found(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    redis_client.delete(account_key(quick, acme))
    found = first_break(quick)
    assert (found.account, found.version, found.stream) == (acme.account_id, 1, "account")
    assert "deleted" in found.reason


def test_an_account_stream_deleted_with_its_head_is_found_through_the_log(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    redis_client.delete(account_key(quick, acme), quick.keyspace.account_head(acme.account_id))
    found = first_break(quick)
    first_logged = entry_of(redis_client, log_key(quick, acme), 1, acme.account_id)
    assert (found.account, found.version, found.entry_id) == (acme.account_id, 1, first_logged)
    assert found.stream == "log" and "no entries" in found.reason


# -- tampering with the partition log only -----------------------------------------------------


def test_an_entry_edited_in_the_log_only_is_named(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    key = log_key(quick, acme)
    target = entry_of(redis_client, key, 6, acme.account_id)

    def edit(entries: Entries) -> Entries:
        for entry_id, fields in entries:
            if entry_id == target:
                fields["data"] = fields["data"].replace("second", "switched")
        return entries

    rewrite(redis_client, key, edit)
    found = first_break(quick)
    assert (found.account, found.version, found.entry_id) == (acme.account_id, 6, target)
    assert (found.stream, found.key) == ("log", key)


def test_an_entry_rehashed_in_the_log_only_is_named(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    key = log_key(quick, acme)
    target = entry_of(redis_client, key, 7, acme.account_id)

    def edit(entries: Entries) -> Entries:
        for entry_id, fields in entries:
            if entry_id == target:
                fields["data"] = fields["data"].replace("10.2.5.0/24", "0.0.0.0/0")
                fields["hash"] = link_hash(fields["prev"], fields)
        return entries

    rewrite(redis_client, key, edit)
    found = first_break(quick, acme.account_id)
    assert (found.version, found.entry_id, found.stream) == (7, target, "log")
    assert "differs from version 7 of the account stream" in found.reason


def test_an_entry_deleted_from_the_log_only_is_named(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    key = log_key(quick, acme)
    redis_client.xdel(key, entry_of(redis_client, key, 3, acme.account_id))
    found = first_break(quick)
    assert (found.version, found.entry_id) == (3, entry_of(redis_client, key, 4, acme.account_id))
    assert found.stream == "log" and "missing from the log" in found.reason


def test_the_last_entry_deleted_from_the_log_only_is_named(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    key = log_key(quick, acme)
    redis_client.xdel(key, entry_of(redis_client, key, 7, acme.account_id))
    found = first_break(quick)
    own = read(redis_client, account_key(quick, acme))
    assert (found.version, found.entry_id, found.stream) == (7, own[6][0], "log")


def test_an_account_deleted_from_the_log_entirely_is_found(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    key = log_key(quick, acme)
    for entry_id, fields in read(redis_client, key):
        if fields["account"] == acme.account_id:
            redis_client.xdel(key, entry_id)
    for account_id in (None, acme.account_id):
        found = first_break(quick, account_id)
        assert (found.account, found.version, found.stream) == (acme.account_id, 1, "log")


def test_an_entry_inserted_in_the_log_only_is_named(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    key = log_key(quick, acme)
    last = read(redis_client, key)[-1][1]
    template = {k: v for k, v in last.items() if k not in ("prev", "hash")}
    [forged] = chained([{**template, "version": "8", "type": "ApiDisabled"}], last["hash"])
    inserted = redis_client.xadd(key, forged)
    found = first_break(quick)
    assert (found.version, found.entry_id, found.stream) == (8, inserted, "log")
    assert "inserted" in found.reason


def test_a_log_entry_of_no_account_is_named(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    inserted = redis_client.xadd(log_key(quick, acme), {"type": "Nonsense"})
    found = first_break(quick)
    assert (found.account, found.entry_id, found.stream) == ("", inserted, "log")
    assert auditor(quick).verify(acme.account_id).ok


# -- several accounts, heads kept outside Redis -----------------------------------------------


def test_every_broken_account_is_counted_and_the_first_is_named(
    quick: Container, redis_client: redis.Redis
) -> None:
    accounts = [bootstrap(quick, f"Account {i}") for i in range(6)]
    for b in accounts[:2]:
        key = account_key(quick, b)
        redis_client.xdel(key, read(redis_client, key)[1][0])
    report: AuditReport = auditor(quick).verify()
    assert report.accounts == 6
    assert {b.account for b in report.breaks} == {b.account_id for b in accounts[:2]}
    first_partition = min(quick.keyspace.partition_of(b.account_id) for b in accounts[:2])
    assert report.first is not None
    assert quick.keyspace.partition_of(report.first.account) == first_partition
    assert auditor(quick).verify(accounts[2].account_id).ok


def rewrite_whole_chain(
    quick: Container, redis_client: redis.Redis, b: Bootstrapped, change: Callable[[dict], None]
) -> None:
    """What an attacker who knows the scheme does: edit, rehash everything, fix the head."""
    own_key, log = account_key(quick, b), log_key(quick, b)
    entries = read(redis_client, own_key)
    bare = [{k: v for k, v in f.items() if k not in ("prev", "hash")} for _, f in entries]
    for record in bare:
        change(record)
    records = chained(bare, GENESIS)
    by_version = {r["version"]: r for r in records}
    rewrite(
        redis_client, own_key, lambda es: [(i, r) for (i, _), r in zip(es, records, strict=True)]
    )
    rewrite(
        redis_client,
        log,
        lambda es: [
            (i, by_version[f["version"]] if f.get("account") == b.account_id else f) for i, f in es
        ],
    )
    redis_client.hset(quick.keyspace.account_head(b.account_id), "hash", records[-1]["hash"])


def test_a_rewrite_of_the_whole_chain_is_caught_by_the_head_kept_outside(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    kept = auditor(quick).head(acme.account_id)
    assert auditor(quick).verify(acme.account_id, kept).ok

    def steal_the_account(record: dict) -> None:
        record["data"] = record["data"].replace("ann@example.com", "eve@example.com")

    rewrite_whole_chain(quick, redis_client, acme, steal_the_account)
    assert auditor(quick).verify().ok, "a consistent rewrite fools a verifier without a kept head"
    report = auditor(quick).verify(acme.account_id, kept)
    assert report.first is not None
    assert (report.first.version, report.first.stream) == (7, "expected")
    assert "rewritten" in report.first.reason


def test_an_older_kept_head_still_verifies_after_more_changes(
    quick: Container, acme: Bootstrapped
) -> None:
    kept = auditor(quick).head(acme.account_id)
    quick.ledger.disable_api(acme.account_id, OPERATOR)
    assert auditor(quick).verify(acme.account_id, kept).ok
    assert auditor(quick).head(acme.account_id).version == 8


def test_a_kept_head_beyond_the_chain_is_a_break(quick: Container, acme: Bootstrapped) -> None:
    report = auditor(quick).verify(acme.account_id, Head(9, "a" * 64))
    assert report.first is not None and report.first.stream == "expected"


# -- the command line --------------------------------------------------------------------------


@pytest.fixture
def cli(quick: Container, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, dict]]:
    monkeypatch.setenv("REDIS_URL", quick.settings.redis_url)
    monkeypatch.setenv("KEYLEDGER_NAMESPACE", quick.settings.namespace)
    monkeypatch.setenv("KEYLEDGER_PARTITIONS", str(quick.settings.partitions))
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, dict]:
        result = runner.invoke(main, ["audit", *args, "--json"])
        return result.exit_code, json.loads(result.stdout)

    return invoke


def test_verify_prints_ok_and_exits_0(cli, acme: Bootstrapped) -> None:
    code, body = cli("verify")
    assert code == 0
    assert body["ok"] is True and body["accounts"] == 1 and body["events"] == 7


def test_verify_names_the_first_broken_link_and_exits_1(
    cli, quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    key = account_key(quick, acme)
    entries = read(redis_client, key)
    redis_client.xdel(key, entries[2][0])
    code, body = cli("verify")
    assert code == 1 and body["ok"] is False
    assert body["brokenLink"]["accountId"] == acme.account_id
    assert body["brokenLink"]["version"] == 3
    assert body["brokenLink"]["entryId"] == entries[3][0]
    assert body["brokenAccounts"] == 1


def test_head_then_verify_with_expect(
    cli, quick: Container, redis_client: redis.Redis, acme: Bootstrapped
) -> None:
    code, head = cli("head", "--account", acme.account_id)
    assert code == 0 and set(head) == {"accountId", "version", "hash"} and head["version"] == 7
    expect = f"{head['version']}:{head['hash']}"
    code, body = cli("verify", "--account", acme.account_id, "--expect", expect)
    assert code == 0 and body["ok"] is True
    rewrite_whole_chain(
        quick, redis_client, acme, lambda r: r.update(time="2000-01-01T00:00:00.000Z")
    )
    code, body = cli("verify", "--account", acme.account_id, "--expect", expect)
    assert code == 1 and body["brokenLink"]["stream"] == "expected"


def test_verify_human_output_names_the_break(
    quick: Container, redis_client: redis.Redis, acme: Bootstrapped, monkeypatch
) -> None:
    monkeypatch.setenv("REDIS_URL", quick.settings.redis_url)
    monkeypatch.setenv("KEYLEDGER_NAMESPACE", quick.settings.namespace)
    monkeypatch.setenv("KEYLEDGER_PARTITIONS", str(quick.settings.partitions))
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0 and ok.stdout.startswith("ok: 1 accounts, 7 events")
    key = account_key(quick, acme)
    redis_client.xdel(key, read(redis_client, key)[0][0])
    broken = runner.invoke(main, ["audit", "verify", "--account", acme.account_id])
    assert broken.exit_code == 1
    assert broken.stdout.startswith(f"BROKEN: account {acme.account_id}, version 1")


def test_expect_needs_an_account_and_a_well_formed_head(cli, acme: Bootstrapped) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["audit", "verify", "--expect", f"1:{'a' * 64}"])
    assert result.exit_code == 2
    code, body = cli("verify", "--account", acme.account_id, "--expect", "seven")
    assert code == 1 and body["error"]["status"] == 400


def test_head_of_an_unknown_account_is_not_found(cli, quick: Container) -> None:
    code, body = cli("head", "--account", "no-such-account")
    assert code == 1 and body["error"]["status"] == 404
