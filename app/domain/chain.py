"""The hash chain that makes each account's history tamper-evident.

Every stored record carries ``prev``, the hash of the record before it in its
account's history (``GENESIS`` for version 1), and ``hash``::

    hash = sha256(prev || canonical_bytes(record))

``prev`` is the 64 ASCII hex digits of the predecessor's hash and the canonical
bytes are the record's fields other than ``hash`` (``prev`` included) as JSON
with sorted keys, no spaces and non-ASCII escaped. Editing, deleting, inserting
or reordering a record breaks the chain at that point; rewriting the whole
chain is caught by comparing its head with a copy kept outside Redis.

This module only computes and checks; reading the streams is the adapter's job
(``app.adapters.audit``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keyledger.domain.errors import InvalidInput, KeyledgerError

GENESIS = "0" * 64
HASH = re.compile(r"[0-9a-f]{64}")


class ChainBroken(KeyledgerError):
    """The chain does not hold together where a command needs it to."""

    status = 500
    code = "chain_broken"


def canonical_bytes(record: Mapping[str, str]) -> bytes:
    """Every field but ``hash``, as sorted, compact, ASCII-only JSON."""
    fields = {name: value for name, value in record.items() if name != "hash"}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("ascii")


def link_hash(prev: str, record: Mapping[str, str]) -> str:
    """The hash a record with predecessor hash ``prev`` must carry."""
    return hashlib.sha256(prev.encode("ascii") + canonical_bytes(record)).hexdigest()


def chained(records: Sequence[Mapping[str, str]], prev: str) -> list[dict[str, str]]:
    """Copies of ``records`` with ``prev`` and ``hash`` set, continuing from ``prev``."""
    linked: list[dict[str, str]] = []
    for record in records:
        entry = {name: value for name, value in record.items() if name not in ("prev", "hash")}
        entry["prev"] = prev
        entry["hash"] = prev = link_hash(prev, entry)
        linked.append(entry)
    return linked


@dataclass(frozen=True)
class Head:
    """The last link of a chain: keep a copy outside Redis to detect a full rewrite."""

    version: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Head:
        """``VERSION:HASH``, as ``keyledger audit head`` prints it."""
        version, _, digest = text.strip().partition(":")
        if not version.isdigit() or int(version) < 1 or not HASH.fullmatch(digest):
            raise InvalidInput(
                "invalid expected head",
                fields={"expect": ["VERSION:HASH, e.g. 12:<64 lowercase hex digits>"]},
            )
        return cls(int(version), digest)


@dataclass(frozen=True)
class BrokenLink:
    """Where a chain first fails to verify, and why."""

    account: str
    #: The place in the account's history (1-based) where the chain breaks.
    version: int | None
    #: The stream entry where it was found, when there is one.
    entry_id: str | None
    #: ``account`` stream, partition ``log``, account ``head`` or the ``expected`` head.
    stream: str
    key: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "accountId": self.account,
            "version": self.version,
            "entryId": self.entry_id,
            "stream": self.stream,
            "key": self.key,
            "reason": self.reason,
        }

    def describe(self) -> str:
        where = f"version {self.version}" if self.version is not None else "no version"
        place = f"entry {self.entry_id} of {self.key}" if self.entry_id else self.key
        return f"account {self.account or '?'}, {where}, {place}: {self.reason}"


@dataclass(frozen=True)
class Link:
    entry_id: str
    hash: str


Entry = tuple[str, Mapping[str, str]]


def malformation(record: Mapping[str, str]) -> str | None:
    """Why ``record`` cannot be a chained event record, or None."""
    version = record.get("version", "")
    if not version.isdigit() or int(version) < 1:
        return "not a chained event record: no valid version"
    for name in ("prev", "hash"):
        if not HASH.fullmatch(record.get(name, "")):
            return f"not a chained event record: no valid {name}"
    return None


def check_account(account: str, key: str, entries: Sequence[Entry]) -> list[Link] | BrokenLink:
    """Walk an account stream from genesis; return its links or the first broken one."""
    links: list[Link] = []
    for index, (entry_id, record) in enumerate(entries):
        expected = index + 1

        def broken(reason: str, entry_id: str = entry_id, expected: int = expected) -> BrokenLink:
            return BrokenLink(account, expected, entry_id, "account", key, reason)

        prev = links[-1].hash if links else GENESIS
        problem = malformation(record)
        if problem:
            return broken(problem)
        if record.get("account") != account:
            return broken(f"the entry belongs to account {record.get('account')!r}: inserted")
        if link_hash(record["prev"], record) != record["hash"]:
            return broken("the content does not match its hash: the entry was edited")
        version = int(record["version"])
        if version < expected:
            return broken(
                f"version {version} again, after entry {links[version - 1].entry_id} "
                f"already holds it: an entry was inserted"
            )
        if version > expected:
            later = [i for i, r in entries[index + 1 :] if r.get("version") == str(expected)]
            if later:
                return broken(
                    f"found version {version} where version {expected} belongs "
                    f"(it comes later, at entry {later[0]}): entries were reordered"
                )
            return broken(
                f"version {expected} is missing (found version {version}): an entry was deleted"
            )
        if record["prev"] != prev:
            predecessor = f"entry {links[-1].entry_id}" if links else "the genesis value"
            return broken(
                f"the entry does not link to its predecessor ({predecessor}): prev is "
                f"{record['prev'][:16]}..., expected {prev[:16]}...; the predecessor was "
                f"replaced or this entry was inserted"
            )
        links.append(Link(entry_id, record["hash"]))
    return links


def check_head(
    account: str, key: str, head_key: str, links: Sequence[Link], head: Head | None
) -> BrokenLink | None:
    """Compare the head Redis keeps for the account (``head_key``) with the end of its stream."""
    last = len(links)
    if head is None:
        if not links:
            return None
        return BrokenLink(account, last, None, "head", head_key, "the account's head is missing")
    if head.version > last:
        return BrokenLink(
            account,
            last + 1,
            None,
            "account",
            key,
            f"the stream ends at version {last} but the head records version {head.version}: "
            f"the last entries were deleted",
        )
    if head.version < last:
        return BrokenLink(
            account,
            head.version + 1,
            links[head.version].entry_id,
            "account",
            key,
            f"the stream goes on after the head's version {head.version}: entries were appended "
            f"outside keyledger",
        )
    if head.hash != links[-1].hash:
        return BrokenLink(
            account,
            last,
            links[-1].entry_id,
            "head",
            head_key,
            f"the head records hash {head.hash[:16]}... for version {last}, the entry's hash is "
            f"{links[-1].hash[:16]}...",
        )
    return None


def check_expected(
    account: str, key: str, links: Sequence[Link], expected: Head
) -> BrokenLink | None:
    """Does the chain still hold ``expected`` (a head kept outside Redis)?"""
    if expected.version > len(links):
        return BrokenLink(
            account,
            expected.version,
            None,
            "expected",
            key,
            f"the chain ends at version {len(links)}, before the expected version "
            f"{expected.version}: history was removed",
        )
    link = links[expected.version - 1]
    if link.hash != expected.hash:
        return BrokenLink(
            account,
            expected.version,
            link.entry_id,
            "expected",
            key,
            f"version {expected.version} has hash {link.hash[:16]}..., expected "
            f"{expected.hash[:16]}...: the history was rewritten",
        )
    return None


def check_log_entry(
    account: str,
    key: str,
    position: int,
    entry_id: str,
    record: Mapping[str, str],
    links: Sequence[Link],
) -> BrokenLink | None:
    """Check the partition log's next entry of ``account`` against its verified chain.

    ``position`` is how many of the account's entries the log held before this one.
    """
    expected = position + 1

    def broken(reason: str) -> BrokenLink:
        return BrokenLink(account, expected, entry_id, "log", key, reason)

    problem = malformation(record)
    if problem:
        return broken(problem)
    if link_hash(record["prev"], record) != record["hash"]:
        return broken("the content does not match its hash: the log entry was edited")
    version = int(record["version"])
    if version < expected:
        return broken(f"version {version} again in the log: an entry was inserted")
    if version > expected:
        return broken(
            f"version {expected} is missing from the log (found version {version}): "
            f"a log entry was deleted or moved"
        )
    if not links:
        return broken("the account stream has no entries: it was deleted or this entry inserted")
    if version > len(links):
        return broken(
            f"the account stream ends at version {len(links)}: the log entry was inserted"
        )
    if record["hash"] != links[version - 1].hash:
        return broken(
            f"the log entry differs from version {version} of the account stream "
            f"(entry {links[version - 1].entry_id}): one of them was replaced"
        )
    return None
