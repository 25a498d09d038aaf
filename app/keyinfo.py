"""What the API and the CLI show of a secret key: one shape for both.

The lifecycle fields come from the folded account state and the clock (``status``
and a running grace period are decided at the moment of the read); last uses come
from ``adapters.lastused`` (outside the log and the projections).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.lastused import LastUse, LastUseReader
from keyledger.domain.account import AccountState, SecretKey
from keyledger.domain.mapper import format_time


def optional_time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def used_at(use: LastUse) -> datetime:
    return datetime.fromtimestamp(use.at, UTC)


def use_fields(use: LastUse | None) -> dict[str, str | None]:
    return {
        "last_used_timestamp": None if use is None else format_time(used_at(use)),
        "last_used_source_ip": None if use is None else use.source_ip,
    }


def key_body(
    state: AccountState, key: SecretKey, now: datetime, use: LastUse | None = None
) -> dict[str, Any]:
    """A key in the form ``web.schemas.ApiKeySchema`` dumps (never its secret)."""
    return {
        "name": key.name,
        "user_id": key.user_id,
        "account_id": state.id,
        "allowed_source_ips": list(key.allowed_source_ips),
        "created_timestamp": format_time(key.created),
        "description": key.description,
        "status": key.status(now),
        "enabled": key.enabled,
        "expires_timestamp": optional_time(key.expires),
        "previous_secret_expires_timestamp": optional_time(key.previous_in_grace(now)),
        **use_fields(use),
    }


class KeyInfo:
    """Reads last uses for a page of keys (one round trip) and shapes the keys."""

    def __init__(self, keyspace: Keyspace, last_uses: LastUseReader):
        self.keys = keyspace
        self.last_uses = last_uses

    def uses(self, state: AccountState, key_ids: Iterable[str]) -> dict[str, LastUse]:
        return self.last_uses.of(self.keys.partition_of(state.id), list(key_ids))

    def bodies(
        self, state: AccountState, keys: list[SecretKey], now: datetime
    ) -> list[dict[str, Any]]:
        used = self.uses(state, (k.key_id for k in keys))
        return [key_body(state, key, now, used.get(key.key_id)) for key in keys]

    def unused(
        self, state: AccountState, keys: list[SecretKey], now: datetime, days: int
    ) -> list[SecretKey]:
        """Keys not used for ``days`` days: last used (never used: created) by then."""
        cutoff = now - timedelta(days=days)
        used = self.uses(state, (k.key_id for k in keys))
        return [
            key
            for key in keys
            if (used_at(used[key.key_id]) if key.key_id in used else key.created) <= cutoff
        ]
