"""Settings, read once from the environment (12-factor) or given to ``create_app``.

| variable | default | meaning |
|---|---|---|
| ``REDIS_URL`` | ``var/redis.url`` of ``make run`` | the Redis holding the log and projections |
| ``KEYLEDGER_REDIS_CLUSTER`` | ``0`` | ``1``: ``REDIS_URL`` names any node of a Redis Cluster |
| ``KEYLEDGER_QUEUE_URL`` | ``REDIS_URL`` | the plain Redis of the RQ queue (required with a cluster) |
| ``KEYLEDGER_MIN_REPLICAS`` | ``0`` | replicas that must hold a change before it is acknowledged |
| ``KEYLEDGER_REPLICA_WAIT_MS`` | ``1000`` | how long a change waits for those replicas (then 503) |
| ``KEYLEDGER_PARTITION_TAGS`` | ``spread`` | hash tags of the partitions: ``spread`` or ``legacy`` |
| ``KEYLEDGER_NAMESPACE`` | ``kl`` | prefix of every Redis key |
| ``KEYLEDGER_PARTITIONS`` | ``16`` | log partitions (fixed once data exists) |
| ``KEYLEDGER_APPLY_TIMEOUT_MS`` | ``3000`` | how long a change waits to be in effect |
| ``KEYLEDGER_REDIS_TIMEOUT_MS`` | ``2000`` | socket timeout of web and CLI calls |
| ``KEYLEDGER_TRUSTED_PROXIES`` | ``0`` | proxy hops whose ``X-Forwarded-For`` is trusted |
| ``KEYLEDGER_TRUSTED_PROXY_ADDRESSES`` | ``127.0.0.1/32,::1/128`` | peers whose ``X-Forwarded-For`` is read |
| ``KEYLEDGER_FORWARD_AUTH_HEADERS`` | ``original`` | ``original`` (nginx) or ``forwarded`` (Traefik) |
| ``KEYLEDGER_ALLOW_ANY_SOURCE`` | ``false`` | accept ``0.0.0.0/0``, ``::/0`` and subnets covering a family together |
| ``KEYLEDGER_MAX_KEYS_PER_ACCOUNT`` | ``1000`` | |
| ``KEYLEDGER_MAX_SUBNETS_PER_KEY`` | ``32`` | |
| ``KEYLEDGER_RATE_LIMIT_PER_MINUTE`` | ``400`` | requests per account key and minute (0: off) |
| ``KEYLEDGER_CHANGES_PER_MINUTE`` | ``100`` | changes per account and minute through the API (0: off) |
| ``KEYLEDGER_REVOCATIONS_PER_MINUTE`` | ``100`` | revocations per account and minute through the API, apart from the changes (0: off) |
| ``KEYLEDGER_AUTH_FAILURES_PER_MINUTE`` | ``60`` | failed authentications per source address (0: off) |
| ``KEYLEDGER_AUTH_FAILURES_PER_KEY_MINUTE`` | ``10`` | failures per source address and key id (1 or more) |
| ``KEYLEDGER_AUTH_FAILURES_PER_NETWORK_MINUTE`` | ``240`` | failures per IPv4 /24 or IPv6 /48 (1 or more) |
| ``KEYLEDGER_FAILED_VERIFICATIONS_PER_SECOND`` | ``20`` | failed argon2 verifications per process (0: off) |
| ``KEYLEDGER_LOG_LEVEL`` | ``INFO`` | server log level |
| ``KEYLEDGER_LOG_FORMAT`` | ``plain`` | ``plain`` text or ``json`` (one object per line) |
| ``KEYLEDGER_METRICS`` | ``1`` | ``0``: no ``/metrics`` on the web port |
| ``KEYLEDGER_READY_MAX_LAG_MS`` | ``5000`` | ``/readyz`` fails while the projector is further behind |
| ``KEYLEDGER_PROJECTOR_METRICS_PORT`` | unset (off) | the projector's own ``/metrics`` port |
| ``KEYLEDGER_WORKER_METRICS_PORT`` | unset (off) | the RQ worker's own ``/metrics`` port |
| ``KEYLEDGER_MAX_KEY_LIFETIME_DAYS`` | ``366`` | how far ahead an expiry may lie (0: no limit) |
| ``KEYLEDGER_LAST_USED_FLUSH_SECONDS`` | ``30`` | how often each process writes last uses |
| ``KEYLEDGER_SWEEP_SECONDS`` | ``15`` | how often the scheduler enqueues the expiry sweep |
| ``KEYLEDGER_SECRET_SCANNING_KEYS`` | unset | GitHub's public-keys document (a file path) |
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyledger.authn.throttle import ThrottleLimits
from keyledger.domain.account import Limits
from keyledger.domain.network import InvalidSubnet, canonical_subnet

REDIS_URL_FILE = Path("var") / "redis.url"
FORWARD_AUTH_HEADERS = {
    "original": ("X-Original-Method", "X-Original-URI"),
    "forwarded": ("X-Forwarded-Method", "X-Forwarded-Uri"),
}
LOG_FORMATS = ("plain", "json")
PARTITION_TAGS = ("spread", "legacy")
_NAMESPACE = re.compile(r"[A-Za-z0-9_.:-]{1,32}")
#: The direct peers whose X-Forwarded-For is read (with KEYLEDGER_TRUSTED_PROXIES > 0).
DEFAULT_TRUSTED_PROXY_ADDRESSES = ("127.0.0.1/32", "::1/128")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    redis_url: str
    namespace: str = "kl"
    partitions: int = 16
    #: ``REDIS_URL`` names a node of a Redis Cluster (redis-py's ``RedisCluster``).
    redis_cluster: bool = False
    #: The plain Redis holding the RQ queue (RQ does not support Redis Cluster);
    #: None: the data's Redis (``REDIS_URL``), which only a single Redis can be.
    queue_url: str | None = None
    #: Replicas that must confirm a change (``WAIT``) before it is acknowledged.
    min_replicas: int = 0
    #: Milliseconds a change waits for ``min_replicas`` confirmations (then 503).
    replica_wait_ms: int = 1000
    #: How partitions are named in hash tags (``Keyspace.tag``): ``spread`` (every
    #: partition's slot chosen to spread them over the slot space) or ``legacy``.
    partition_tags: str = "spread"
    apply_timeout: float = 3.0
    redis_timeout: float = 2.0
    trusted_proxies: int = 0
    #: CIDRs of the direct peers (the last proxy) whose X-Forwarded-For is believed.
    trusted_proxy_addresses: tuple[str, ...] = DEFAULT_TRUSTED_PROXY_ADDRESSES
    #: Which headers name the original request at /v1/auth/check: "original"
    #: (X-Original-Method/-URI, nginx) or "forwarded" (X-Forwarded-Method/-Uri, Traefik).
    forward_auth_headers: str = "original"
    limits: Limits = field(default_factory=Limits)
    log_level: str = "INFO"
    rate_limit_per_minute: int = 400
    #: Key pairs each web process keeps in memory (records, verified secrets, rate-limit
    #: leases), least recently used dropped first; see docs/operators.md, "Configuration".
    auth_cache_size: int = 100_000
    #: Changes an account may record through the API per minute (0: no budget).
    changes_per_minute: int = 100
    #: Revocations (``domain.revocations``) an account may record per minute, on their
    #: own budget that other changes cannot spend (0: no budget).
    revocations_per_minute: int = 100
    throttle: ThrottleLimits = field(default_factory=ThrottleLimits)
    #: Observability (``keyledger.observability``): log format, metrics and readiness.
    log_format: str = "plain"
    metrics: bool = True
    ready_max_lag_ms: int = 5000
    projector_metrics_port: int | None = None
    worker_metrics_port: int | None = None
    #: Seconds between the writes of each process's noted key uses (docs/lifecycle.md).
    last_used_flush_seconds: float = 30.0
    #: Seconds between two expiry sweeps enqueued by ``keyledger scheduler``.
    sweep_seconds: float = 15.0
    #: Path of GitHub's secret-scanning public-keys document; None: the endpoint is off.
    secret_scanning_keys: str | None = None

    def __post_init__(self) -> None:
        if not _NAMESPACE.fullmatch(self.namespace):
            raise ConfigError("KEYLEDGER_NAMESPACE: 1-32 of letters, digits, '_.:-' (no braces)")
        if not 1 <= self.partitions <= 256:
            raise ConfigError("KEYLEDGER_PARTITIONS must be between 1 and 256")
        if self.redis_cluster and not self.queue_url:
            raise ConfigError(
                "KEYLEDGER_QUEUE_URL is required with KEYLEDGER_REDIS_CLUSTER=1: RQ does not "
                "support Redis Cluster, so its queue needs a plain Redis "
                "(KEYLEDGER_QUEUE_URL=redis://host:port/0)"
            )
        if not 0 <= self.min_replicas <= 16:
            raise ConfigError("KEYLEDGER_MIN_REPLICAS must be between 0 and 16")
        if not 1 <= self.replica_wait_ms <= 60_000:
            raise ConfigError("KEYLEDGER_REPLICA_WAIT_MS must be between 1 and 60000")
        if self.partition_tags not in PARTITION_TAGS:
            raise ConfigError("KEYLEDGER_PARTITION_TAGS must be 'spread' or 'legacy'")
        if self.rate_limit_per_minute < 0:
            raise ConfigError("KEYLEDGER_RATE_LIMIT_PER_MINUTE must be 0 (off) or more")
        if not 1 <= self.auth_cache_size <= 100_000_000:
            raise ConfigError("KEYLEDGER_AUTH_CACHE_SIZE must be between 1 and 100000000")
        if self.changes_per_minute < 0:
            raise ConfigError("KEYLEDGER_CHANGES_PER_MINUTE must be 0 (off) or more")
        if self.revocations_per_minute < 0:
            raise ConfigError("KEYLEDGER_REVOCATIONS_PER_MINUTE must be 0 (off) or more")
        if self.forward_auth_headers not in FORWARD_AUTH_HEADERS:
            raise ConfigError("KEYLEDGER_FORWARD_AUTH_HEADERS must be 'original' or 'forwarded'")
        if self.throttle.failed_verifications_per_second < 0:
            raise ConfigError("KEYLEDGER_FAILED_VERIFICATIONS_PER_SECOND must be 0 (off) or more")
        throttle = self.throttle
        if throttle.failures_per_source < 0:
            raise ConfigError("KEYLEDGER_AUTH_FAILURES_PER_MINUTE must be 0 (off) or more")
        # While failures are counted, a limit of 0 on a narrower count would refuse every
        # request that carries keys once anything failed: only the per-source limit turns
        # counting off (and then the narrower ones are not used).
        for name, limit in (
            ("KEYLEDGER_AUTH_FAILURES_PER_KEY_MINUTE", throttle.failures_per_source_and_key),
            ("KEYLEDGER_AUTH_FAILURES_PER_NETWORK_MINUTE", throttle.failures_per_network),
        ):
            if limit < 0 or (limit == 0 and throttle.counting):
                raise ConfigError(
                    f"{name} must be 1 or more (KEYLEDGER_AUTH_FAILURES_PER_MINUTE=0 turns "
                    "failure counting off)"
                )
        if self.trusted_proxies < 0:
            raise ConfigError("KEYLEDGER_TRUSTED_PROXIES must be 0 or more")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError("KEYLEDGER_LOG_FORMAT must be 'plain' or 'json'")
        if self.ready_max_lag_ms < 0:
            raise ConfigError("KEYLEDGER_READY_MAX_LAG_MS must be 0 or more")
        for name, port in (
            ("KEYLEDGER_PROJECTOR_METRICS_PORT", self.projector_metrics_port),
            ("KEYLEDGER_WORKER_METRICS_PORT", self.worker_metrics_port),
        ):
            if port is not None and not 1 <= port <= 65535:
                raise ConfigError(f"{name} must be a port number (1-65535)")
        for entry in self.trusted_proxy_addresses:
            trusted_network(entry)
        if self.limits.max_key_lifetime_days < 0:
            raise ConfigError("KEYLEDGER_MAX_KEY_LIFETIME_DAYS must be 0 (no limit) or more")
        if not 0 < self.last_used_flush_seconds <= 3600:
            raise ConfigError("KEYLEDGER_LAST_USED_FLUSH_SECONDS must be above 0, at most 3600")
        if not 0 < self.sweep_seconds <= 45:
            raise ConfigError(
                "KEYLEDGER_SWEEP_SECONDS must be above 0 and at most 45 (expiries are "
                "recorded within 60 s)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        try:
            values: dict[str, Any] = {
                "redis_url": env.get("REDIS_URL") or discover_redis_url(),
                "namespace": env.get("KEYLEDGER_NAMESPACE", "kl"),
                "partitions": int(env.get("KEYLEDGER_PARTITIONS", "16")),
                "redis_cluster": _flag(env.get("KEYLEDGER_REDIS_CLUSTER", "")),
                "queue_url": env.get("KEYLEDGER_QUEUE_URL") or None,
                "min_replicas": int(env.get("KEYLEDGER_MIN_REPLICAS", "0")),
                "replica_wait_ms": int(env.get("KEYLEDGER_REPLICA_WAIT_MS", "1000")),
                "partition_tags": env.get("KEYLEDGER_PARTITION_TAGS", "spread").strip().lower(),
                "apply_timeout": int(env.get("KEYLEDGER_APPLY_TIMEOUT_MS", "3000")) / 1000,
                "redis_timeout": int(env.get("KEYLEDGER_REDIS_TIMEOUT_MS", "2000")) / 1000,
                "trusted_proxies": int(env.get("KEYLEDGER_TRUSTED_PROXIES", "0")),
                "trusted_proxy_addresses": tuple(
                    entry.strip()
                    for entry in env.get(
                        "KEYLEDGER_TRUSTED_PROXY_ADDRESSES",
                        ",".join(DEFAULT_TRUSTED_PROXY_ADDRESSES),
                    ).split(",")
                    if entry.strip()
                ),
                "forward_auth_headers": env.get("KEYLEDGER_FORWARD_AUTH_HEADERS", "original"),
                "log_level": env.get("KEYLEDGER_LOG_LEVEL", "INFO").upper(),
                "rate_limit_per_minute": int(env.get("KEYLEDGER_RATE_LIMIT_PER_MINUTE", "400")),
                "changes_per_minute": int(env.get("KEYLEDGER_CHANGES_PER_MINUTE", "100")),
                "revocations_per_minute": int(env.get("KEYLEDGER_REVOCATIONS_PER_MINUTE", "100")),
                "auth_cache_size": int(env.get("KEYLEDGER_AUTH_CACHE_SIZE", "100000")),
                "last_used_flush_seconds": float(
                    env.get("KEYLEDGER_LAST_USED_FLUSH_SECONDS", "30")
                ),
                "sweep_seconds": float(env.get("KEYLEDGER_SWEEP_SECONDS", "15")),
                "secret_scanning_keys": env.get("KEYLEDGER_SECRET_SCANNING_KEYS") or None,
                "throttle": ThrottleLimits(
                    failures_per_source=int(env.get("KEYLEDGER_AUTH_FAILURES_PER_MINUTE", "60")),
                    failures_per_source_and_key=int(
                        env.get("KEYLEDGER_AUTH_FAILURES_PER_KEY_MINUTE", "10")
                    ),
                    failures_per_network=int(
                        env.get("KEYLEDGER_AUTH_FAILURES_PER_NETWORK_MINUTE", "240")
                    ),
                    failed_verifications_per_second=int(
                        env.get("KEYLEDGER_FAILED_VERIFICATIONS_PER_SECOND", "20")
                    ),
                ),
                "log_format": env.get("KEYLEDGER_LOG_FORMAT", "plain").strip().lower(),
                "metrics": env.get("KEYLEDGER_METRICS", "1").strip() != "0",
                "ready_max_lag_ms": int(env.get("KEYLEDGER_READY_MAX_LAG_MS", "5000")),
                "projector_metrics_port": _port(env.get("KEYLEDGER_PROJECTOR_METRICS_PORT")),
                "worker_metrics_port": _port(env.get("KEYLEDGER_WORKER_METRICS_PORT")),
                "limits": Limits(
                    keys_per_account=int(env.get("KEYLEDGER_MAX_KEYS_PER_ACCOUNT", "1000")),
                    subnets_per_key=int(env.get("KEYLEDGER_MAX_SUBNETS_PER_KEY", "32")),
                    allow_match_all_subnets=_flag(env.get("KEYLEDGER_ALLOW_ANY_SOURCE", "")),
                    max_key_lifetime_days=int(env.get("KEYLEDGER_MAX_KEY_LIFETIME_DAYS", "366")),
                ),
            }
        except ValueError as exc:
            raise ConfigError(f"bad setting: {exc}") from None
        values.update(overrides)
        return cls(**values)

    @property
    def queue_redis_url(self) -> str:
        """Where the RQ queue lives: ``KEYLEDGER_QUEUE_URL``, else the data's Redis."""
        return self.queue_url or self.redis_url


def _port(value: str | None) -> int | None:
    """A port number, or None (off) when unset or empty."""
    return int(value) if value and value.strip() else None


def trusted_network(entry: str) -> str:
    """The canonical CIDR of one KEYLEDGER_TRUSTED_PROXY_ADDRESSES entry (a bare address
    is its own /32 or /128); ConfigError naming the entry when it is not one."""
    text = entry if "/" in entry else f"{entry}/{128 if ':' in entry else 32}"
    try:
        return canonical_subnet(text, allow_any=True)
    except InvalidSubnet as exc:
        raise ConfigError(f"KEYLEDGER_TRUSTED_PROXY_ADDRESSES: {entry!r}: {exc}") from None


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def discover_redis_url() -> str:
    """The embedded Redis that ``make run`` started in this checkout, if any."""
    if REDIS_URL_FILE.exists():
        return REDIS_URL_FILE.read_text().strip()
    raise ConfigError(
        "REDIS_URL is not set and no embedded Redis is running here "
        "(start one with 'make run', or set REDIS_URL=redis://host:port/0)"
    )
