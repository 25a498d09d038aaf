"""Verifies the hash chains of the log as stored in Redis.

For every account (those met in the partition logs, plus any whose head exists
without a single log entry) the account stream is walked from genesis
(``app.domain.chain.check_account``), its end is compared with the head Redis
keeps and, when given, with a head kept outside Redis. Then the partition log
must hold exactly the same records, in the same order per account: a record
edited, deleted or inserted in the log only is caught too.

Only the chain hashes of the accounts of one partition are held in memory at a
time; the streams are read in pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keyledger.adapters.eventstore import EventStore
from keyledger.adapters.redis_client import as_entries, store_call
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
            partition = self.keys.partition_of(account_id)
            seen = self._verify_partition(partition, report, account_id, expected)
            if account_id not in seen:
                version, _ = self.store.head(account_id)
                if version is None and not self.store.read_account(account_id, count=1):
                    raise NotFound(f"account {account_id[:64]!r} not found")
                self._verify_unlogged(account_id, report, expected)
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
            if len(page) < PAGE:
                break
            after = page[-1].entry_id
        for account, state in progress.items():
            if state.links is not None and state.position < len(state.links):
                report.breaks.append(self._missing_from_log(account, state.position, state.links))
        return set(progress)

    def _verify_unlogged(self, account: str, report: AuditReport, expected: Head | None) -> None:
        """An account with a head but no entry in its partition log."""
        links = self._verify_account(account, report, expected)
        if links:
            report.breaks.append(self._missing_from_log(account, 0, links))

    def _verify_account(
        self, account: str, report: AuditReport, expected: Head | None
    ) -> list[Link] | None:
        """Walk the account stream and compare its end with the heads; None when broken."""
        key = self.keys.account_events(account)
        entries = [(s.entry_id, s.record) for s in self.store.iter_account(account)]
        report.accounts += 1
        report.events += len(entries)
        result = check_account(account, key, entries)
        if isinstance(result, BrokenLink):
            report.breaks.append(result)
            return None
        head_key = self.keys.account_head(account)
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
