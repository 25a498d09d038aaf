"""The account aggregate: its state folded from events, and the decisions that
turn commands into new events.

Everything an API key depends on (users, roles, keys, subnets, the API switch)
belongs to one account, so the account is the unit of consistency: each change
is checked against the account's current state and appended with the version it
was checked against (optimistic concurrency).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from keyledger.domain import events as ev
from keyledger.domain.errors import InvalidInput, NotFound
from keyledger.domain.network import InvalidSubnet, canonical_subnet
from keyledger.domain.roles import Role
from keyledger.domain.text import not_nfkc_reason, unprintable_reason
from keyledger.domain.tokens import holds_key

KEY_NAME = re.compile(r"[A-Za-z0-9_-]{10,50}")
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,253}")
MAX_USER_NAME = 100


@dataclass(frozen=True)
class Limits:
    keys_per_account: int = 1000
    subnets_per_key: int = 32
    users_per_account: int = 1000
    allow_match_all_subnets: bool = False
    #: How far ahead an expiry may lie, in days (0: no limit).
    max_key_lifetime_days: int = 366


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str
    role: Role


@dataclass(frozen=True)
class SecretKey:
    name: str
    key_id: str
    user_id: str
    key_hash: str
    allowed_source_ips: tuple[str, ...]
    created: datetime
    description: str = ""
    expires: datetime | None = None
    enabled: bool = True
    #: The expiry was recorded (``SecretKeyExpired``) and has not been changed since.
    expiry_recorded: bool = False
    #: The secret that was current before a rotation with a grace period, and its end.
    previous_hash: str | None = None
    previous_expires: datetime | None = None

    def status(self, now: datetime) -> str:
        """``expired`` (from the instant of expiry), else ``disabled``, else ``active``."""
        if self.expires is not None and now >= self.expires:
            return "expired"
        return "active" if self.enabled else "disabled"

    def previous_in_grace(self, now: datetime) -> datetime | None:
        """When the previous secret stops, while it still works; else None."""
        if self.previous_expires is not None and now < self.previous_expires:
            return self.previous_expires
        return None


@dataclass(frozen=True)
class AccountState:
    id: str
    version: int = 0
    name: str = ""
    created: datetime | None = None
    api_enabled: bool = False
    account_key_id: str | None = None
    account_key_hash: str | None = None
    #: The account key rotated away with a grace period, until its grace ends.
    previous_account_key_id: str | None = None
    previous_account_key_hash: str | None = None
    previous_account_key_expires: datetime | None = None
    #: Account keys (current or previous) reported leaked: key id -> where it was found.
    leaked_account_keys: tuple[tuple[str, str], ...] = ()
    users: dict[str, User] = field(default_factory=dict)
    keys: dict[str, SecretKey] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.version > 0

    def user(self, user_id: str) -> User:
        try:
            return self.users[user_id]
        except KeyError:
            raise NotFound(f"user {user_id[:64]!r} not found") from None

    def key(self, name: str) -> SecretKey:
        try:
            return self.keys[name]
        except KeyError:
            raise NotFound(f"API key {name[:64]!r} not found") from None

    def key_by_id(self, key_id: str) -> SecretKey | None:
        return next((k for k in self.keys.values() if k.key_id == key_id), None)

    def keys_of(self, user_id: str) -> list[SecretKey]:
        return [k for k in self.keys.values() if k.user_id == user_id]

    def owners(self) -> list[User]:
        return [u for u in self.users.values() if u.role is Role.OWNER]

    def evolve(self, events: list[ev.Event]) -> AccountState:
        """Return the state after ``events``; ``self`` is left untouched."""
        if not events:
            return self
        users, keys = dict(self.users), dict(self.keys)
        state = self
        for event in events:
            if event.version != state.version + 1:
                raise ValueError(
                    f"account {self.id}: event version {event.version} after {state.version}"
                )
            state = _apply(replace(state, version=event.version), event, users, keys)
        return replace(state, users=users, keys=keys)


def _apply(
    state: AccountState, event: ev.Event, users: dict[str, User], keys: dict[str, SecretKey]
) -> AccountState:
    match event:
        case ev.AccountRegistered():
            return replace(state, name=event.name, created=event.time)
        case ev.ApiEnabled():
            return replace(state, api_enabled=True)
        case ev.ApiDisabled():
            return replace(state, api_enabled=False)
        case ev.AccountKeyIssued():
            return replace(state, account_key_id=event.key_id, account_key_hash=event.key_hash)
        case ev.AccountKeyRevoked():
            return _account_key_gone(state, event.key_id)
        case ev.AccountKeyRetired():
            return replace(
                state,
                previous_account_key_id=state.account_key_id,
                previous_account_key_hash=state.account_key_hash,
                previous_account_key_expires=event.expires,
                account_key_id=None,
                account_key_hash=None,
            )
        case ev.PreviousAccountKeyExpired():
            return _account_key_gone(state, event.key_id)
        case ev.AccountKeyReportedLeaked():
            return replace(
                state, leaked_account_keys=(*state.leaked_account_keys, (event.key_id, event.url))
            )
        case ev.UserAdded():
            users[event.user_id] = User(event.user_id, event.name, event.email, Role(event.role))
        case ev.UserRenamed():
            users[event.user_id] = replace(users[event.user_id], name=event.name)
        case ev.UserRoleChanged():
            users[event.user_id] = replace(users[event.user_id], role=Role(event.role))
        case ev.UserRemoved():
            del users[event.user_id]
        case ev.SecretKeyCreated():
            keys[event.name] = SecretKey(
                event.name,
                event.key_id,
                event.user_id,
                event.key_hash,
                tuple(event.allowed_source_ips),
                event.time,
                description=event.description,
                expires=event.expires,
            )
        case ev.SecretKeyDeleted() | ev.SecretKeyRevoked():
            del keys[event.name]
        case (
            ev.SecretKeyRotated()
            | ev.PreviousSecretExpired()
            | ev.PreviousSecretRevoked()
            | ev.SecretKeyDisabled()
            | ev.SecretKeyEnabled()
            | ev.SecretKeyDescriptionChanged()
            | ev.SecretKeyExpiryChanged()
            | ev.SecretKeyExpired()
        ):
            keys[event.name] = _key_lifecycle(keys[event.name], event)
        case ev.SourceSubnetAllowed():
            key = keys[event.name]
            keys[event.name] = replace(
                key, allowed_source_ips=(*key.allowed_source_ips, event.cidr)
            )
        case ev.SourceSubnetRemoved():
            key = keys[event.name]
            remaining = tuple(c for c in key.allowed_source_ips if c != event.cidr)
            keys[event.name] = replace(key, allowed_source_ips=remaining)
        case _:
            raise ValueError(f"unknown event type {type(event).__name__}")
    return state


def _account_key_gone(state: AccountState, key_id: str) -> AccountState:
    """The current or the previous account key stopped working for good."""
    leaks = tuple(leak for leak in state.leaked_account_keys if leak[0] != key_id)
    if key_id == state.previous_account_key_id:
        return replace(
            state,
            previous_account_key_id=None,
            previous_account_key_hash=None,
            previous_account_key_expires=None,
            leaked_account_keys=leaks,
        )
    return replace(state, account_key_id=None, account_key_hash=None, leaked_account_keys=leaks)


def _key_lifecycle(key: SecretKey, event: ev.Event) -> SecretKey:
    match event:
        case ev.SecretKeyRotated():
            return replace(
                key,
                key_hash=event.key_hash,
                previous_hash=event.previous_key_hash or None,
                previous_expires=event.previous_expires,
            )
        case ev.PreviousSecretExpired() | ev.PreviousSecretRevoked():
            return replace(key, previous_hash=None, previous_expires=None)
        case ev.SecretKeyDisabled():
            return replace(key, enabled=False)
        case ev.SecretKeyEnabled():
            return replace(key, enabled=True)
        case ev.SecretKeyDescriptionChanged():
            return replace(key, description=event.description)
        case ev.SecretKeyExpiryChanged():
            return replace(key, expires=event.expires, expiry_recorded=False)
        case ev.SecretKeyExpired():
            return replace(key, expiry_recorded=True)
    raise ValueError(f"not a key lifecycle event: {type(event).__name__}")


class Recorder:
    """Collects the events one decision produces, numbering them from the state's version."""

    def __init__(self, state: AccountState, now: datetime, actor: ev.Actor):
        self.state, self.now, self.actor = state, now, actor
        self.events: list[ev.Event] = []

    def record(self, event_type: type[ev.Event], **data: Any) -> None:
        self.events.append(
            event_type(
                account_id=self.state.id,
                version=self.state.version + len(self.events) + 1,
                time=self.now,
                actor=self.actor,
                **data,
            )
        )


# --- validation shared by every entry point (HTTP, CLI) -------------------------------


def check_key_name(name: str) -> str:
    if not isinstance(name, str) or not KEY_NAME.fullmatch(name):
        raise InvalidInput(
            "invalid API key name",
            fields={"name": ["10-50 characters: letters, digits, '-' and '_' only"]},
        )
    return check_no_key(name, "name", "API key name")


#: Why a value that could hold a key is refused (the value itself is never echoed).
HOLDS_KEY = (
    "holds a keyledger key, or what could be a secret (more than 32 letters and digits in "
    "a row mixing digits and both cases, or 43 or more with a digit or both cases): a key "
    "is a secret, never put it in a name, e-mail or description; separate the words of a "
    "long name with '-' or '_'"
)


def check_no_key(value: str, field_name: str, what: str) -> str:
    """Refuse a value that could hold a keyledger key or its secret (``tokens.holds_key``):
    pasted into the wrong field, it would be kept for ever in the event log and shown in
    every log line and answer that quotes the field."""
    if holds_key(value):
        raise InvalidInput(f"invalid {what}", fields={field_name: [HOLDS_KEY]})
    return value


def check_text(value: str, field_name: str, what: str, *, keys: bool = True) -> str:
    """Refuse control, format and other invisible characters in a text field (``text``),
    and, unless ``keys`` is false, anything that could hold a key (``check_no_key``)."""
    reason = unprintable_reason(value)
    if reason is not None:
        raise InvalidInput(f"invalid {what}: {reason}", fields={field_name: [reason]})
    return check_no_key(value, field_name, what) if keys else value


def check_user_name(name: str, what: str = "user name") -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_USER_NAME:
        raise InvalidInput(
            f"invalid {what}",
            fields={"name": [f"1-{MAX_USER_NAME} printable characters"]},
        )
    return check_text(name, "name", what).strip()


def check_email(email: str) -> str:
    if isinstance(email, str) and len(email) <= 254:
        check_text(email, "email", "email")
        reason = not_nfkc_reason(email)
        if reason is not None:
            raise InvalidInput(f"invalid email: {reason}", fields={"email": [reason]})
    if not isinstance(email, str) or len(email) > 254 or not EMAIL.fullmatch(email):
        raise InvalidInput("invalid email", fields={"email": ["not a valid email address"]})
    return email


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput(
            "invalid role", fields={"role": [f"must be one of: {allowed}"]}
        ) from None


def check_subnet(cidr: str, limits: Limits, field_name: str = "cidr") -> str:
    if isinstance(cidr, str):
        check_text(cidr, field_name, "subnet")
    try:
        return canonical_subnet(cidr, allow_any=limits.allow_match_all_subnets)
    except InvalidSubnet as exc:
        raise InvalidInput(f"invalid subnet: {exc}", fields={field_name: [str(exc)]}) from None


def check_account_name(name: str) -> str:
    return check_user_name(name, "account name")
