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

    kind: str  # "user" | "operator"
    name: str
    user_id: str | None = None
    api_key_name: str | None = None
    source_ip: str | None = None
    request_id: str | None = None


OPERATOR = Actor(kind="operator", name="keyledger support")


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
    TYPE = "SecretKeyCreated"
    name: str
    key_id: str
    user_id: str
    user_name: str
    key_hash: str
    allowed_source_ips: tuple[str, ...] = field(default=())


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
    )
}
