"""Verifies the hash chains of the log as stored in Redis.

For every account (those met in the partition logs, plus any whose head exists
without a single log entry) the account stream is walked from genesis
(``app.domain.chain.check_account``), its end is compared with the head Redis
keeps and, when given, with a head kept outside Redis. Then the partition log
must hold exactly the same records, in the same order per account: a record
edited, deleted or inserted in the log only is caught too.

Only the chain hashes of the accounts of one partition are held in memory at a
time; the streams are read in pages.

One account (``verify(account_id)``, what ``GET /v1/audit/verify`` runs) costs what
its own history holds, whatever its neighbours in the partition appended: the log
index the append script keeps (version -> log entry id, ``Keyspace.log_index``)
names the log entries to compare, each read by its id; an entry of the account
inserted into the log is found through the system-log projection, which holds
every log entry of the account it applied (its index, scored by version), and in
the part of the log that projection has not applied yet. History older than the
log index is checked with the partition pass once, and indexed when intact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, cast

from keyledger.adapters.eventstore import EventStore
from keyledger.adapters.redis_client import as_entries, store_call, stream_id
from keyledger.adapters.topology import Node
from keyledger.domain.chain import (
    GENESIS,
    BrokenLink,
    ChainBroken,
    Head,
    Link,
    check_account,
    check_expected,
    check_head,
    check_log_entry,
)
from keyledger.domain.errors import NotFound

PAGE = 2000
STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


@dataclass
class AuditReport:
    partitions: int = 0
    accounts: int = 0
    events: int = 0
    log_entries: int = 0
    #: The first broken link of each broken account (or unattributable log entry), in order.
    breaks: list[BrokenLink] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first(self) -> BrokenLink | None:
        return self.breaks[0] if self.breaks else None

    def as_dict(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "ok": self.ok,
            "accounts": self.accounts,
            "events": self.events,
            "logEntries": self.log_entries,
            "partitions": self.partitions,
        }
        if self.first is not None:
            summary["brokenLink"] = self.first.as_dict()
            summary["brokenAccounts"] = len({b.account for b in self.breaks})
        return summary


@dataclass
class _Progress:
    """One account's verified chain and how far the partition log has matched it."""

    links: list[Link] | None
    position: int = 0
    #: The log entry ids that matched each version, in order.
    matched: list[str] = field(default_factory=list)


class ChainAuditor:
    def __init__(self, store: EventStore):
        self.store = store
        self.keys = store.keys
        self.client = store.client

    @store_call
    def head(self, account_id: str) -> Head:
        """The account's current chain head, checked against the end of its stream."""
        last = as_entries(self.client.xrevrange(self.keys.account_events(account_id), count=1))
        try:
            stored = self._stored_head(account_id)
        except ValueError:
            stored = None
        if stored is None and not last:
            raise NotFound(f"account {account_id[:64]!r} not found")
        if (
            stored is None
            or not last
            or last[0][1].get("version") != str(stored.version)
            or last[0][1].get("hash") != stored.hash
        ):
            raise ChainBroken(
                f"account {account_id[:64]!r}: the head does not match the end of its stream; "
                f"run `keyledger audit verify --account {account_id[:64]}`"
            )
        return stored

    @store_call
    def verify(self, account_id: str | None = None, expected: Head | None = None) -> AuditReport:
        """Verify one account (with an optional expected head) or every account."""
        if expected is not None and account_id is None:
            raise ValueError("an expected head belongs to one account")
        report = AuditReport(partitions=self.keys.partitions)
        if account_id is not None:
            indexed = self._log_index(account_id)
            version, _ = self.store.head(account_id)
            if version is None and not indexed and not self.store.read_account(account_id, count=1):
                raise NotFound(f"account {account_id[:64]!r} not found")
            if not self._verify_indexed(account_id, indexed, report, expected):
                self._verify_one_by_partition(account_id, report, expected)
            return report
        with_heads = {
            self.keys.account_of_head(key)
            for key in self.client.scan_iter(match=self.keys.account_heads(), count=1000)
        }
        logged: set[str] = set()
        for partition in range(self.keys.partitions):
            logged |= self._verify_partition(partition, report)
        for account in sorted(with_heads - logged):
            self._verify_unlogged(account, report, None)
        return report

    # -- steps -----------------------------------------------------------------------------
    def _verify_partition(
        self,
        partition: int,
        report: AuditReport,
        only: str | None = None,
        expected: Head | None = None,
    ) -> set[str]:
        """Check the partition log entry by entry; return the accounts met in it."""
        log_key = self.keys.log(partition)
        progress: dict[str, _Progress] = {}
        unattributable = False
        after = "0"
        while True:
            page = self.store.read_log(partition, after, PAGE)
            for stored in page:
                account = stored.record.get("account")
                if only is not None and account != only:
                    continue
                report.log_entries += 1
                if not account or self.keys.partition_of(account) != partition:
                    if not unattributable:
                        unattributable = True
                        report.breaks.append(
                            BrokenLink(
                                account or "",
                                None,
                                stored.entry_id,
                                "log",
                                log_key,
                                "the log entry names no account of this partition: inserted",
                            )
                        )
                    continue
                if account not in progress:
                    progress[account] = _Progress(self._verify_account(account, report, expected))
                state = progress[account]
                if state.links is None:
                    continue
                broken = check_log_entry(
                    account, log_key, state.position, stored.entry_id, stored.record, state.links
                )
                state.position += 1
                if broken:
                    report.breaks.append(broken)
                    state.links = None
                elif only is not None:
                    state.matched.append(stored.entry_id)
            if len(page) < PAGE:
                break
            after = page[-1].entry_id
        for account, state in progress.items():
            if state.links is not None and state.position < len(state.links):
                report.breaks.append(self._missing_from_log(account, state.position, state.links))
        if only is not None and only in progress and report.ok:
            self._index(only, progress[only].matched)
        return set(progress)

    # -- one account, in proportion to its own history ---------------------------------------
    def _verify_one_by_partition(
        self, account_id: str, report: AuditReport, expected: Head | None
    ) -> None:
        """The partition pass for one account (history older than its log index); an
        intact history is indexed on the way, so the next check is proportional."""
        partition = self.keys.partition_of(account_id)
        seen = self._verify_partition(partition, report, account_id, expected)
        if account_id not in seen:
            self._verify_unlogged(account_id, report, expected)

    def _verify_indexed(
        self,
        account: str,
        indexed: dict[int, str],
        report: AuditReport,
        expected: Head | None,
    ) -> bool:
        """Check one account through its log index; False (nothing reported) when the
        index does not cover the account's stream (history from before the index)."""
        entries = [(s.entry_id, s.record) for s in self.store.iter_account(account)]
        if not indexed or not set(range(1, len(entries) + 1)) <= set(indexed):
            return False
        report.accounts += 1
        report.events += len(entries)
        links = self._checked_stream(account, entries, report, expected)
        if links is None:
            return True
        log_key = self.keys.log(self.keys.partition_of(account))
        logged = self._log_entries(log_key, [indexed[v] for v in sorted(indexed)])
        previous = (0, -1)
        for position, version in enumerate(sorted(indexed)):
            entry_id = indexed[version]
            record = logged.get(entry_id)
            if version > len(links):
                broken: BrokenLink | None = BrokenLink(
                    account,
                    version,
                    entry_id,
                    "log",
                    log_key,
                    f"the partition log holds version {version} of the account, beyond the "
                    f"end of its stream (version {len(links)}): the stream lost its last "
                    f"entries, or the log entry was inserted",
                )
            elif record is None:
                broken = self._missing_from_log(account, position, links)
            elif stream_id(entry_id) <= previous:
                broken = BrokenLink(
                    account,
                    version,
                    entry_id,
                    "log",
                    log_key,
                    f"version {version} comes before version {version - 1} in the log: "
                    f"entries were reordered",
                )
            else:
                report.log_entries += 1
                broken = check_log_entry(account, log_key, position, entry_id, record, links)
            if broken:
                report.breaks.append(broken)
                return True
            previous = stream_id(entry_id)
        inserted = self._inserted(account, log_key, indexed)
        if inserted:
            report.log_entries += 1
            report.breaks.append(inserted)
        return True

    def _checked_stream(
        self,
        account: str,
        entries: list[tuple[str, dict[str, str]]],
        report: AuditReport,
        expected: Head | None,
    ) -> list[Link] | None:
        """``_verify_account`` on entries already read (counted by the caller)."""
        key, head_key = self.keys.account_events(account), self.keys.account_head(account)
        result = check_account(account, key, entries)
        if isinstance(result, BrokenLink):
            report.breaks.append(result)
            return None
        try:
            head = self._stored_head(account)
        except ValueError:
            report.breaks.append(
                BrokenLink(account, None, None, "head", head_key, "the head is malformed")
            )
            return None
        broken = check_head(account, key, head_key, result, head)
        if broken is None and expected is not None:
            broken = check_expected(account, key, result, expected)
        if broken:
            report.breaks.append(broken)
            return None
        return result

    def _log_entries(self, log_key: str, entry_ids: list[str]) -> dict[str, dict[str, str]]:
        """The log entries with these ids (absent ones missing), each read by its id."""
        found: dict[str, dict[str, str]] = {}

        def read(node: Node) -> None:
            for start in range(0, len(entry_ids), PAGE):
                pipe = node.client.pipeline(transaction=False)
                for entry_id in entry_ids[start : start + PAGE]:
                    pipe.xrange(log_key, min=entry_id, max=entry_id, count=1)
                for reply in pipe.execute():
                    for entry_id, fields in as_entries(reply):
                        found[entry_id] = fields

        self.store.topology.on_primary(log_key, read)
        return found

    def _inserted(self, account: str, log_key: str, indexed: dict[int, str]) -> BrokenLink | None:
        """An entry of the account in the log that its log index does not name: among
        those the system-log projection applied (its index), or in the log after them.

        The index was read before the account's stream: a change recorded since is in
        the log but not in ``indexed``. An entry not named there is looked up in the
        index as it is now (the append script records each entry as it appends it)
        before it is called inserted.
        """
        genuine = set(indexed.values())

        def named(entry_id: str) -> bool:
            if entry_id not in genuine:
                genuine.update(self._log_index(account).values())
            return entry_id in genuine

        def inserted(entry_id: str, version: object) -> BrokenLink:
            return BrokenLink(
                account,
                int(str(version)) if str(version).isdigit() else None,
                entry_id,
                "log",
                log_key,
                "the partition log holds an entry of the account that its history does "
                "not: the log entry was inserted",
            )

        projected = cast(
            list[tuple[str, float]],
            self.client.zrange(self.keys.syslog_index(account), 0, -1, withscores=True),
        )
        for member, score in projected:
            if not named(str(member)):
                return inserted(str(member), int(score))
        partition = self.keys.partition_of(account)
        after = self.client.get(self.keys.checkpoint("syslog", partition)) or "0"
        while True:
            page = self.store.read_log(partition, str(after), PAGE)
            for stored in page:
                if stored.record.get("account") == account and not named(stored.entry_id):
                    return inserted(stored.entry_id, stored.record.get("version"))
            if len(page) < PAGE:
                return None
            after = page[-1].entry_id

    def _log_index(self, account_id: str) -> dict[int, str]:
        """The account's log index; an entry that is not a version and a stream id is
        left out (a version without its entry is then checked the long way)."""
        raw = self.client.hgetall(self.keys.log_index(account_id))
        return {
            int(version): str(entry_id)
            for version, entry_id in raw.items()
            if str(version).isdigit() and int(version) > 0 and STREAM_ID.fullmatch(str(entry_id))
        }

    def _index(self, account_id: str, matched: list[str]) -> None:
        """Record the log entry of each version the partition pass found intact."""
        if matched:
            mapping = {str(version): entry_id for version, entry_id in enumerate(matched, 1)}
            self.client.hset(self.keys.log_index(account_id), mapping=cast(Any, mapping))

    def _verify_unlogged(self, account: str, report: AuditReport, expected: Head | None) -> None:
        """An account with a head but no entry in its partition log."""
        links = self._verify_account(account, report, expected)
        if links:
            report.breaks.append(self._missing_from_log(account, 0, links))

    def _verify_account(
        self, account: str, report: AuditReport, expected: Head | None
    ) -> list[Link] | None:
        """Walk the account stream and compare its end with the heads; None when broken."""
        entries = [(s.entry_id, s.record) for s in self.store.iter_account(account)]
        report.accounts += 1
        report.events += len(entries)
        return self._checked_stream(account, entries, report, expected)

    def _missing_from_log(self, account: str, position: int, links: list[Link]) -> BrokenLink:
        return BrokenLink(
            account,
            position + 1,
            links[position].entry_id,
            "log",
            self.keys.log(self.keys.partition_of(account)),
            f"versions {position + 1} to {len(links)} of the account stream are missing from "
            f"the partition log: log entries were deleted",
        )

    def _stored_head(self, account_id: str) -> Head | None:
        """The head Redis keeps; ``ValueError`` when it was tampered into nonsense."""
        version, digest = self.store.head(account_id)
        if version is None:
            return None
        return Head(int(version), digest or GENESIS)
