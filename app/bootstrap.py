"""The composition root: builds every dependency once, for the web app, workers and CLI."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from keyledger.adapters.accounts import AccountRepository
from keyledger.adapters.applied import AppliedWatch
from keyledger.adapters.authcache import AuthCache
from keyledger.adapters.authlookup import AuthLookup
from keyledger.adapters.eventstore import EventStore
from keyledger.adapters.failures import SharedFailureCounts
from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.lastused import LastUseReader, LastUseRecorder
from keyledger.adapters.redis_client import connect
from keyledger.adapters.systemlog import SystemLogReader
from keyledger.authn.authenticator import Authenticator
from keyledger.authn.hashing import KeyHasher
from keyledger.authn.throttle import Throttle
from keyledger.config import ConfigError, Settings
from keyledger.service import Clock, Ledger, utcnow

log = logging.getLogger("keyledger")


@dataclass
class Container:
    settings: Settings
    redis: redis.Redis
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

    def epoch_seconds() -> float:
        return clock().timestamp()

    client = connect(settings.redis_url, timeout=settings.redis_timeout)
    keyspace = Keyspace(settings.namespace, settings.partitions)
    store = EventStore(client, keyspace)
    hasher = KeyHasher()
    cache = AuthCache(client, keyspace.invalidations())
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
    )
    return Container(
        settings=settings,
        redis=client,
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


def verify_partitions(container: Container) -> None:
    """``check_partitions`` at start-up; a Redis that is down now is not fatal (503s later)."""
    try:
        check_partitions(container.redis, container.keyspace)
    except redis.RedisError as exc:
        log.warning("could not check the partition count now (%s)", type(exc).__name__)


def check_partitions(client: redis.Redis, keyspace: Keyspace) -> None:
    """Record the partition count on first use; refuse to run with a different one.

    Accounts and key ids are routed by the partition count, so changing it
    after data exists would hide every account.
    """
    client.hsetnx(keyspace.meta(), "partitions", keyspace.partitions)
    stored = int(client.hget(keyspace.meta(), "partitions") or keyspace.partitions)
    if stored != keyspace.partitions:
        raise ConfigError(
            f"KEYLEDGER_PARTITIONS={keyspace.partitions} but the data in this Redis was "
            f"written with {stored} partitions"
        )
