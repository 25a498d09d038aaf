"""Domain events: immutable facts, named in the past tense.

Every event records which account it belongs to, its version in that account's
history, when it happened and who did it. The type name and schema version are
stable strings stored in the log; renaming a class must not change them.

No event ever holds a secret: keys are recorded by their public id and their
argon2id hash only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar


@dataclass(frozen=True, kw_only=True)
class Actor:
    """Who caused an event: a user through the API, or an operator through the CLI."""

    kind: str  # "user" | "operator" | "system"
    name: str
    user_id: str | None = None
    api_key_name: str | None = None
    source_ip: str | None = None
    request_id: str | None = None


OPERATOR = Actor(kind="operator", name="keyledger support")
#: keyledger itself, recording what the clock already decided (an expiry, a grace's end).
SYSTEM = Actor(kind="system", name="keyledger")
#: The secret scanning partner endpoint, acting on a signed report of a leaked key.
SECRET_SCANNING = Actor(kind="system", name="secret scanning")


@dataclass(frozen=True, kw_only=True)
class Event:
    TYPE: ClassVar[str] = ""
    SCHEMA: ClassVar[int] = 1

    account_id: str
    version: int
    time: datetime
    actor: Actor


@dataclass(frozen=True, kw_only=True)
class AccountRegistered(Event):
    TYPE = "AccountRegistered"
    name: str
    owner_user_id: str


@dataclass(frozen=True, kw_only=True)
class ApiEnabled(Event):
    TYPE = "ApiEnabled"


@dataclass(frozen=True, kw_only=True)
class ApiDisabled(Event):
    TYPE = "ApiDisabled"


@dataclass(frozen=True, kw_only=True)
class AccountKeyIssued(Event):
    TYPE = "AccountKeyIssued"
    key_id: str
    key_hash: str


@dataclass(frozen=True, kw_only=True)
class AccountKeyRevoked(Event):
    TYPE = "AccountKeyRevoked"
    key_id: str


@dataclass(frozen=True, kw_only=True)
class UserAdded(Event):
    TYPE = "UserAdded"
    user_id: str
    name: str
    email: str
    role: str


@dataclass(frozen=True, kw_only=True)
class UserRenamed(Event):
    TYPE = "UserRenamed"
    user_id: str
    name: str
    previous_name: str


@dataclass(frozen=True, kw_only=True)
class UserRoleChanged(Event):
    TYPE = "UserRoleChanged"
    user_id: str
    user_name: str
    role: str
    previous_role: str


@dataclass(frozen=True, kw_only=True)
class UserRemoved(Event):
    TYPE = "UserRemoved"
    user_id: str
    user_name: str


@dataclass(frozen=True, kw_only=True)
class SecretKeyCreated(Event):
    """Schema 2 added ``description`` and ``expires`` (upcast from 1 in ``mapper``)."""

    TYPE = "SecretKeyCreated"
    SCHEMA = 2
    name: str
    key_id: str
    user_id: str
    user_name: str
    key_hash: str
    allowed_source_ips: tuple[str, ...] = field(default=())
    description: str = ""
    expires: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class SecretKeyDeleted(Event):
    TYPE = "SecretKeyDeleted"
    name: str
    key_id: str
    user_id: str
    user_name: str


@dataclass(frozen=True, kw_only=True)
class SourceSubnetAllowed(Event):
    TYPE = "SourceSubnetAllowed"
    name: str
    key_id: str
    cidr: str


@dataclass(frozen=True, kw_only=True)
class SourceSubnetRemoved(Event):
    TYPE = "SourceSubnetRemoved"
    name: str
    key_id: str
    cidr: str


# -- the key lifecycle (docs/lifecycle.md) --------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class SecretKeyRotated(Event):
    """A new secret for the key (same key id). With a grace period, the secret that was
    current (``previous_key_hash``) keeps working until ``previous_expires``; any older
    previous secret stops at once."""

    TYPE = "SecretKeyRotated"
    name: str
    key_id: str
    key_hash: str
    previous_key_hash: str = ""
    previous_expires: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class PreviousSecretExpired(Event):
    """Recorded by keyledger after the instant a rotation's grace period ended."""

    TYPE = "PreviousSecretExpired"
    name: str
    key_id: str
    expired_at: datetime


@dataclass(frozen=True, kw_only=True)
class PreviousSecretRevoked(Event):
    """The previous secret of a key in its grace period stopped at once (reported leaked)."""

    TYPE = "PreviousSecretRevoked"
    name: str
    key_id: str
    key_hash: str
    reason: str
    url: str


@dataclass(frozen=True, kw_only=True)
class SecretKeyDisabled(Event):
    TYPE = "SecretKeyDisabled"
    name: str
    key_id: str


@dataclass(frozen=True, kw_only=True)
class SecretKeyEnabled(Event):
    TYPE = "SecretKeyEnabled"
    name: str
    key_id: str


@dataclass(frozen=True, kw_only=True)
class SecretKeyDescriptionChanged(Event):
    TYPE = "SecretKeyDescriptionChanged"
    name: str
    key_id: str
    description: str
    previous_description: str


@dataclass(frozen=True, kw_only=True)
class SecretKeyExpiryChanged(Event):
    """``expires`` None: the key no longer expires."""

    TYPE = "SecretKeyExpiryChanged"
    name: str
    key_id: str
    expires: datetime | None
    previous_expires: datetime | None


@dataclass(frozen=True, kw_only=True)
class SecretKeyExpired(Event):
    """Recorded by keyledger after the instant ``expired_at`` (the key stopped working then,
    whether or not this was recorded yet)."""

    TYPE = "SecretKeyExpired"
    name: str
    key_id: str
    expired_at: datetime


@dataclass(frozen=True, kw_only=True)
class SecretKeyRevoked(Event):
    """The key stopped working and is gone (like a deletion), for ``reason`` (``leaked``).
    ``key_hash`` is kept so that a repeated report of the same secret is recognised."""

    TYPE = "SecretKeyRevoked"
    name: str
    key_id: str
    user_id: str
    user_name: str
    key_hash: str
    reason: str
    url: str


@dataclass(frozen=True, kw_only=True)
class AccountKeyRetired(Event):
    """The account key was rotated away with a grace period: it works until ``expires``."""

    TYPE = "AccountKeyRetired"
    key_id: str
    expires: datetime


@dataclass(frozen=True, kw_only=True)
class PreviousAccountKeyExpired(Event):
    """Recorded by keyledger after the grace period of a retired account key ended."""

    TYPE = "PreviousAccountKeyExpired"
    key_id: str
    expired_at: datetime


@dataclass(frozen=True, kw_only=True)
class AccountKeyReportedLeaked(Event):
    """A secret scanner found the account key in public; it keeps working (revoking it
    would cut off the whole account): the operator rotates it with a grace period."""

    TYPE = "AccountKeyReportedLeaked"
    key_id: str
    url: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        AccountRegistered,
        ApiEnabled,
        ApiDisabled,
        AccountKeyIssued,
        AccountKeyRevoked,
        UserAdded,
        UserRenamed,
        UserRoleChanged,
        UserRemoved,
        SecretKeyCreated,
        SecretKeyDeleted,
        SourceSubnetAllowed,
        SourceSubnetRemoved,
        SecretKeyRotated,
        PreviousSecretExpired,
        PreviousSecretRevoked,
        SecretKeyDisabled,
        SecretKeyEnabled,
        SecretKeyDescriptionChanged,
        SecretKeyExpiryChanged,
        SecretKeyExpired,
        SecretKeyRevoked,
        AccountKeyRetired,
        PreviousAccountKeyExpired,
        AccountKeyReportedLeaked,
    )
}
