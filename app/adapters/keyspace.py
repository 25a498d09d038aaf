"""Every Redis key name keyledger uses, in one place.

Per-account data lives in the account's log partition: all its keys share the
partition's hash tag (``{p07.39}``), so every script and transaction touches one
hash slot. Key ids start with the partition number (``app.domain.tokens``), so a
key lookup also goes straight to its partition.

**Where partitions land on a Redis Cluster.** A cluster gives each primary a
contiguous range of the 16384 hash slots (``redis-cli --cluster create`` splits
them evenly). The tag of partition ``p`` of ``N`` is ``p<NN>.<suffix>``, with the
first suffix (``0``-``9``, ``a``-``z``, then two characters, ...) whose slot lies
within a quarter of a share of the middle of the ``p``-th ``N``-th of the slot
space (``spread_tag``). So the partitions spread evenly over any number of
primaries with even ranges: 16 partitions on 3 primaries are 5, 6 and 5. The
plain tag ``p<NN>`` of keyledger before clusters (``legacy``) puts CRC16's
structure in the way: 16 of them fall 4, 5 and 7 on 3 primaries. The layout is
recorded in Redis with the partition count and checked at start
(``bootstrap.check_partitions``).
"""

from __future__ import annotations

import binascii
import itertools
import re
import string
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote

PROJECTIONS = ("auth", "syslog")
SLOTS = 16384
TAG_LAYOUTS = ("spread", "legacy")
_SUFFIX_ALPHABET = string.digits + string.ascii_lowercase
_ACCOUNTS_HELD = 65536  # account prefixes a keyspace remembers


def slot_of(tag: str) -> int:
    """The Redis Cluster hash slot of a hash tag (CRC16-XMODEM modulo 16384)."""
    return binascii.crc_hqx(tag.encode(), 0) % SLOTS


@lru_cache(maxsize=4096)
def spread_tag(partition: int, partitions: int) -> str:
    """The ``spread`` tag of a partition: its slot near the middle of its share of the
    slot space. A storage format: never change the rule (tests pin the tags)."""
    target = (2 * partition + 1) * SLOTS // (2 * partitions)
    tolerance = max(SLOTS // (4 * partitions), 1)
    base = f"p{partition:02d}"
    for length in itertools.count(1):
        for letters in itertools.product(_SUFFIX_ALPHABET, repeat=length):
            candidate = f"{base}.{''.join(letters)}"
            if abs(slot_of(candidate) - target) < tolerance:
                return candidate
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class Keyspace:
    namespace: str = "kl"
    partitions: int = 16
    #: ``spread`` (``spread_tag``) or ``legacy`` (``p<NN>``, as written before clusters).
    tags: str = "spread"
    #: account id -> the prefix of its keys: a rebuild names several keys per log entry.
    _accounts: dict[str, str] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if self.tags not in TAG_LAYOUTS:
            raise ValueError(f"unknown partition tag layout {self.tags!r}")

    def partition_of(self, account_id: str) -> int:
        return zlib.crc32(account_id.encode()) % self.partitions

    def partition_tag(self, partition: int) -> str:
        """The hash tag's text, without braces (``p07.39``)."""
        if self.tags == "legacy":
            return f"p{partition:02d}"
        return spread_tag(partition, self.partitions)

    def tag(self, partition: int) -> str:
        return f"{self.namespace}:{{{self.partition_tag(partition)}}}"

    def _account(self, account_id: str) -> str:
        prefix = self._accounts.get(account_id)
        if prefix is None:
            if len(self._accounts) >= _ACCOUNTS_HELD:
                self._accounts.clear()
            prefix = f"{self.tag(self.partition_of(account_id))}:acct:{account_id}"
            self._accounts[account_id] = prefix
        return prefix

    # -- the log (source of truth) -------------------------------------------------------
    def log(self, partition: int) -> str:
        """The partition's stream of every event of its accounts, in append order."""
        return f"{self.tag(partition)}:log"

    def account_events(self, account_id: str) -> str:
        """One account's own stream of events (its aggregate sequence)."""
        return f"{self._account(account_id)}:events"

    def account_head(self, account_id: str) -> str:
        """Hash with the account's current version and chain hash."""
        return f"{self._account(account_id)}:head"

    def log_index(self, account_id: str) -> str:
        """Hash: each version of the account -> the id of the partition log entry holding
        it, written by the append script (and, for history older than the index, by the
        first full check of the account, ``adapters.audit``)."""
        return f"{self._account(account_id)}:logged"

    def account_heads(self) -> str:
        """``SCAN`` pattern matching the head of every account."""
        return f"{self.namespace}:{{p*}}:acct:*:head"

    def account_of_head(self, key: str) -> str:
        """The account id in a key that ``account_heads()`` matched."""
        return key.partition("}:acct:")[2].removesuffix(":head")

    def meta(self) -> str:
        return f"{self.namespace}:meta"

    def replication_mark(self, partition: int) -> str:
        """Counter a change increments on its partition's primary right before ``WAIT``:
        that write's place in the replication stream follows the append and its
        projection, so replicas that reached it hold both (``adapters.replication``)."""
        return f"{self.tag(partition)}:replicated"

    # -- projections ---------------------------------------------------------------------
    def checkpoint(self, projection: str, partition: int) -> str:
        return f"{self.tag(partition)}:proj:{projection}:checkpoint"

    def halted(self, partition: int) -> str:
        """Hash set when the projector stopped at an entry it cannot apply."""
        return f"{self.tag(partition)}:proj:halted"

    def dead_letters(self, partition: int) -> str:
        """Stream of parked entries with their error (never read by the projections)."""
        return f"{self.tag(partition)}:proj:deadletter"

    def auth_account(self, account_id: str) -> str:
        return f"{self._account(account_id)}:auth"

    def auth_user(self, account_id: str, user_id: str) -> str:
        return f"{self._account(account_id)}:auth:user:{user_id}"

    def auth_key(self, key_id: str) -> str | None:
        """Record of an account or secret key, or None when the id names no partition."""
        try:
            partition = int(key_id[:2], 16)
        except ValueError:
            return None
        if partition >= self.partitions:
            return None
        return f"{self.tag(partition)}:auth:key:{key_id}"

    def due(self, partition: int) -> str:
        """Sorted set of the partition's upcoming expiries and grace ends (score: epoch ms),
        kept by the auth projection so that a sweep reads only what is due."""
        return f"{self.tag(partition)}:auth:due"

    def leaked_account_keys(self, partition: int) -> str:
        """Hash ``<account id>:<key id>`` -> report, of account keys reported leaked and
        still working (auth projection; ``keyledger status`` shows it)."""
        return f"{self.tag(partition)}:auth:leaked"

    def last_used(self, partition: int) -> str:
        """Hash key id -> ``"<epoch ms> <source address>"`` of the partition's keys' last use.

        Written by the web processes (``adapters.lastused``), not by a projection: a
        use is not an event, and a rebuild must neither delete nor rewrite it, so
        ``projection_of`` does not match it.
        """
        return f"{self.tag(partition)}:lastused"

    def sweep_lease(self) -> str:
        """Held (``SET NX PX``) by the scheduler that enqueues the next expiry sweep."""
        return f"{self.namespace}:sweep:lease"

    def idempotency(self, account_id: str, scope: str) -> str:
        return f"{self._account(account_id)}:idem:{scope}"

    def rate_limit(self, account_key_id: str, lane: str = "") -> str:
        """Request counter of an account key in the current minute window (of one lane)."""
        partition = int(account_key_id[:2], 16) % self.partitions
        suffix = f":{lane}" if lane else ""
        return f"{self.tag(partition)}:rl:{account_key_id}{suffix}"

    def failures(self, network: str) -> str:
        """Failed authentications from one network (IPv4 /24, IPv6 /48) in this minute."""
        return f"{self.namespace}:fail:{network}"

    def invalidations(self) -> str:
        """Pub/sub channel on which the projector names the accounts it changed."""
        return f"{self.namespace}:auth:invalidate"

    def syslog(self, account_id: str) -> str:
        return f"{self._account(account_id)}:syslog"

    def syslog_index(self, account_id: str) -> str:
        """Sorted set of the account's system-log entry ids, scored by version: paging by rank."""
        return f"{self._account(account_id)}:syslog:index"

    def syslog_resource_index(self, account_id: str, resource_id: str) -> str:
        """``syslog_index`` of the entries about one resource (the ``resourceId`` filter).

        The resource id is percent-encoded (``quote(safe="")``): a client's ``resourceId``
        names a key, and no ``:``, ``{`` or ``}`` of its own may change which.
        """
        return f"{self._account(account_id)}:syslog:resource:{_encoded(resource_id)}"

    def syslog_keys(self, account_id: str, resource_id: str) -> tuple[str, str, str]:
        """``syslog``, ``syslog_index`` and ``syslog_resource_index`` (the projection's writes)."""
        stream = f"{self._account(account_id)}:syslog"
        return stream, f"{stream}:index", f"{stream}:resource:{_encoded(resource_id)}"

    def change_budget(self, account_id: str) -> str:
        """Changes recorded through the API in the current minute window, on Redis's clock."""
        return f"{self._account(account_id)}:changes"

    def scan_answer(self, digest: str) -> str:
        """The answer to a signed secret-scanning report, by the SHA-256 of its body."""
        return f"{self.namespace}:scan:answer:{digest}"

    def revocation_budget(self, account_id: str) -> str:
        """``change_budget`` of the revocations (``domain.revocations``), counted apart."""
        return f"{self._account(account_id)}:revocations"

    def consumer_group(self) -> str:
        return "projector"

    # -- rebuilds ------------------------------------------------------------------------
    def shadow(self, projection: str) -> Keyspace:
        """Where a rebuild writes a fresh generation of ``projection``.

        Only the namespace differs (``~`` cannot occur in a configured one), so every
        shadow key has the hash tag, and the slot, of the live key it will be renamed to.
        """
        return Keyspace(f"{self.namespace}~{projection}", self.partitions, self.tags)

    def translate(self, key: str, into: Keyspace) -> str:
        """The name ``key`` of this keyspace has in keyspace ``into``."""
        prefix = f"{self.namespace}:"
        if not key.startswith(prefix):
            raise ValueError(f"{key!r} is not a key of namespace {self.namespace!r}")
        return f"{into.namespace}:{key[len(prefix) :]}"

    def every_key(self) -> str:
        """``SCAN`` pattern matching every key of this keyspace (and maybe others': filter)."""
        return f"{self.namespace}:*"

    def projection_of(self, key: str) -> ProjectionKey | None:
        """What a projection key of this keyspace holds; None for any other key.

        Kinds: auth ``key``, ``subnets``, ``account``, ``user``, ``due``, ``leaked``;
        syslog ``stream``, ``index`` and ``resource index``.
        The log, account streams and heads, checkpoints and the rest are None.
        """
        prefix = f"{self.namespace}:"
        if not key.startswith(prefix):
            return None
        for pattern, projection, kind in _PROJECTION_KEYS:
            found = pattern.fullmatch(key, len(prefix))
            if found:
                return ProjectionKey(projection, kind, int(found.group(1)))
        return None

    def is_log_index(self, key: str) -> bool:
        """True for the system log's sorted-set indexes: as long as the log, only appended to."""
        found = self.projection_of(key)
        return found is not None and found.kind in ("index", "resource index")

    def rebuild_lock(self, projection: str) -> str:
        """Held (``SET NX PX``, value: the job id) while a rebuild of ``projection`` runs."""
        return f"{self.namespace}:rebuild:{projection}:lock"


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+")


def _encoded(resource_id: str) -> str:
    """``quote(resource_id, safe="")``; key names and ids are already unreserved (fast path)."""
    return resource_id if _UNRESERVED.fullmatch(resource_id) else quote(resource_id, safe="")


class ProjectionKey(NamedTuple):
    projection: str
    kind: str
    partition: int


_ID = r"[^:{}]+"
_TAG = r"\{p([0-9]+)(?:\.[0-9a-z]+)?\}"
_PROJECTION_KEYS = tuple(
    (re.compile(pattern), projection, kind)
    for pattern, projection, kind in (
        (rf"{_TAG}:auth:key:{_ID}", "auth", "key"),
        (rf"{_TAG}:auth:key:{_ID}:subnets", "auth", "subnets"),
        (rf"{_TAG}:acct:{_ID}:auth", "auth", "account"),
        (rf"{_TAG}:acct:{_ID}:auth:user:{_ID}", "auth", "user"),
        (rf"{_TAG}:auth:due", "auth", "due"),
        (rf"{_TAG}:auth:leaked", "auth", "leaked"),
        (rf"{_TAG}:acct:{_ID}:syslog", "syslog", "stream"),
        (rf"{_TAG}:acct:{_ID}:syslog:index", "syslog", "index"),
        (rf"{_TAG}:acct:{_ID}:syslog:resource:{_ID}", "syslog", "resource index"),
    )
)
