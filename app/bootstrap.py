"""The composition root: builds every dependency once, for the web app, workers and CLI."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from keyledger.adapters.accounts import AccountRepository
from keyledger.adapters.applied import AppliedWatch
from keyledger.adapters.authcache import AuthCache
from keyledger.adapters.authlookup import AuthLookup
from keyledger.adapters.eventstore import EventStore
from keyledger.adapters.failures import SharedFailureCounts
from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.lastused import LastUseReader, LastUseRecorder
from keyledger.adapters.redis_client import REDIS_ERRORS, connect
from keyledger.adapters.replication import Durability
from keyledger.adapters.systemlog import SystemLogReader
from keyledger.adapters.topology import Client, Topology
from keyledger.authn.authenticator import Authenticator
from keyledger.authn.hashing import KeyHasher
from keyledger.authn.throttle import Throttle
from keyledger.config import ConfigError, Settings
from keyledger.service import Clock, Ledger, utcnow

log = logging.getLogger("keyledger")


@dataclass
class Container:
    settings: Settings
    #: Routes every single-slot command: a ``redis.Redis``, or a ``RedisCluster``.
    redis: Client
    #: Which node serves which partition (``adapters.topology``).
    topology: Topology
    keyspace: Keyspace
    store: EventStore
    ledger: Ledger
    authenticator: Authenticator
    system_log: SystemLogReader
    hasher: KeyHasher
    auth_cache: AuthCache
    #: Notes key uses in memory and writes them in batches (docs/lifecycle.md).
    last_use: LastUseRecorder
    last_uses: LastUseReader


def build(settings: Settings, clock: Clock = utcnow) -> Container:
    """Every dependency; ``clock`` is the one time source (decisions, policies, last use)."""

    # The same instant without making a datetime at every decision, when the clock is the
    # system's.
    epoch_seconds: Callable[[], float] = (
        time.time if clock is utcnow else (lambda: clock().timestamp())
    )

    client = connect(
        settings.redis_url, timeout=settings.redis_timeout, cluster=settings.redis_cluster
    )
    topology = Topology(client)
    keyspace = keyspace_of(settings)
    store = EventStore(
        client,
        keyspace,
        topology=topology,
        durability=Durability(settings.min_replicas, settings.replica_wait_ms),
    )
    # A key pair is two verified keys (its account key is shared by the account's pairs).
    hasher = KeyHasher(cache_size=2 * settings.auth_cache_size)
    cache = AuthCache(topology, keyspace.invalidations(), capacity=settings.auth_cache_size)
    cache.subscribe(store.forget)
    ledger = Ledger(
        store,
        AccountRepository(store, changes=cache),
        AppliedWatch(client, keyspace),
        hasher,
        keyspace,
        settings.limits,
        settings.apply_timeout,
        clock,
        settings.changes_per_minute,
        settings.revocations_per_minute,
    )
    return Container(
        settings=settings,
        redis=client,
        topology=topology,
        keyspace=keyspace,
        store=store,
        ledger=ledger,
        authenticator=Authenticator(
            AuthLookup(client, keyspace, cache),
            hasher,
            throttle=Throttle(settings.throttle, SharedFailureCounts(client, keyspace)),
            clock=epoch_seconds,
        ),
        system_log=SystemLogReader(client, keyspace),
        hasher=hasher,
        auth_cache=cache,
        last_use=LastUseRecorder(
            client, keyspace, settings.last_used_flush_seconds, clock=epoch_seconds
        ),
        last_uses=LastUseReader(client, keyspace),
    )


RECORD_PARTITIONS = """
if redis.call('HSETNX', KEYS[1], 'partitions', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'tags', ARGV[2])
end
return redis.call('HMGET', KEYS[1], 'partitions', 'tags')
"""


def keyspace_of(settings: Settings) -> Keyspace:
    return Keyspace(settings.namespace, settings.partitions, settings.partition_tags)


def verify_partitions(container: Container) -> None:
    """``check_partitions`` at start-up; a Redis that is down now is not fatal (503s later)."""
    try:
        check_partitions(container.redis, container.keyspace)
    except REDIS_ERRORS as exc:
        log.warning("could not check the partition count now (%s)", type(exc).__name__)


def check_partitions(client: Client, keyspace: Keyspace) -> None:
    """Record the partition count and tag layout on first use; refuse to run with others.

    Accounts and key ids are routed by the partition count, and every key name
    carries its partition's tag, so changing either after data exists would hide
    every account. Data written before tag layouts were recorded has the
    ``legacy`` tags.
    """
    stored, tags = client.eval(
        RECORD_PARTITIONS, 1, keyspace.meta(), keyspace.partitions, keyspace.tags
    )
    if int(stored or keyspace.partitions) != keyspace.partitions:
        raise ConfigError(
            f"KEYLEDGER_PARTITIONS={keyspace.partitions} but the data in this Redis was "
            f"written with {stored} partitions"
        )
    written = str(tags or "legacy")
    if written != keyspace.tags:
        raise ConfigError(
            f"KEYLEDGER_PARTITION_TAGS={keyspace.tags} but the data in this Redis was "
            f"written with the {written} partition tags: set KEYLEDGER_PARTITION_TAGS={written} "
            "(docs/operators.md: Running at scale)"
        )
