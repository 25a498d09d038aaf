"""Settings, read once from the environment (12-factor) or given to ``create_app``.

| variable | default | meaning |
|---|---|---|
| ``REDIS_URL`` | ``var/redis.url`` of ``make run`` | the Redis holding the log and projections |
| ``KEYLEDGER_NAMESPACE`` | ``kl`` | prefix of every Redis key |
| ``KEYLEDGER_PARTITIONS`` | ``16`` | log partitions (fixed once data exists) |
| ``KEYLEDGER_APPLY_TIMEOUT_MS`` | ``3000`` | how long a change waits to be in effect |
| ``KEYLEDGER_REDIS_TIMEOUT_MS`` | ``2000`` | socket timeout of web and CLI calls |
| ``KEYLEDGER_TRUSTED_PROXIES`` | ``0`` | proxy hops whose ``X-Forwarded-For`` is trusted |
| ``KEYLEDGER_FORWARD_AUTH_HEADERS`` | ``original`` | ``original`` (nginx) or ``forwarded`` (Traefik) |
| ``KEYLEDGER_ALLOW_ANY_SOURCE`` | ``false`` | accept ``0.0.0.0/0`` and ``::/0`` as subnets |
| ``KEYLEDGER_MAX_KEYS_PER_ACCOUNT`` | ``1000`` | |
| ``KEYLEDGER_MAX_SUBNETS_PER_KEY`` | ``32`` | |
| ``KEYLEDGER_RATE_LIMIT_PER_MINUTE`` | ``400`` | requests per account key and minute (0: off) |
| ``KEYLEDGER_AUTH_FAILURES_PER_MINUTE`` | ``60`` | failed authentications per source address (0: off) |
| ``KEYLEDGER_AUTH_FAILURES_PER_KEY_MINUTE`` | ``10`` | failures per source address and key id |
| ``KEYLEDGER_LOG_LEVEL`` | ``INFO`` | server log level |
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

REDIS_URL_FILE = Path("var") / "redis.url"
FORWARD_AUTH_HEADERS = {
    "original": ("X-Original-Method", "X-Original-URI"),
    "forwarded": ("X-Forwarded-Method", "X-Forwarded-Uri"),
}
_NAMESPACE = re.compile(r"[A-Za-z0-9_.:-]{1,32}")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    redis_url: str
    namespace: str = "kl"
    partitions: int = 16
    apply_timeout: float = 3.0
    redis_timeout: float = 2.0
    trusted_proxies: int = 0
    #: Which headers name the original request at /v1/auth/check: "original"
    #: (X-Original-Method/-URI, nginx) or "forwarded" (X-Forwarded-Method/-Uri, Traefik).
    forward_auth_headers: str = "original"
    limits: Limits = field(default_factory=Limits)
    log_level: str = "INFO"
    rate_limit_per_minute: int = 400
    throttle: ThrottleLimits = field(default_factory=ThrottleLimits)
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
        if self.rate_limit_per_minute < 0:
            raise ConfigError("KEYLEDGER_RATE_LIMIT_PER_MINUTE must be 0 (off) or more")
        if self.forward_auth_headers not in FORWARD_AUTH_HEADERS:
            raise ConfigError("KEYLEDGER_FORWARD_AUTH_HEADERS must be 'original' or 'forwarded'")
        if self.trusted_proxies < 0:
            raise ConfigError("KEYLEDGER_TRUSTED_PROXIES must be 0 or more")
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
                "apply_timeout": int(env.get("KEYLEDGER_APPLY_TIMEOUT_MS", "3000")) / 1000,
                "redis_timeout": int(env.get("KEYLEDGER_REDIS_TIMEOUT_MS", "2000")) / 1000,
                "trusted_proxies": int(env.get("KEYLEDGER_TRUSTED_PROXIES", "0")),
                "forward_auth_headers": env.get("KEYLEDGER_FORWARD_AUTH_HEADERS", "original"),
                "log_level": env.get("KEYLEDGER_LOG_LEVEL", "INFO").upper(),
                "rate_limit_per_minute": int(env.get("KEYLEDGER_RATE_LIMIT_PER_MINUTE", "400")),
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
                ),
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
