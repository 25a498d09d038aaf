"""The authentication lookup: what a request needs, keyed by what it presents.

- ``…:auth:key:<key id>`` hash: kind (account|secret), account, hash, and for
  secret keys name, user and enabled (1|0); ``…:subnets`` beside it, a set of
  canonical CIDRs. Moments are epoch milliseconds: ``expires`` (secret key),
  ``prev_hash`` and ``prev_until`` (the previous secret of a rotation with a grace
  period), ``until`` (an account key rotated away with a grace period). A secret
  key revoked as leaked leaves ``kind: revoked`` with its hash, so that a repeated
  report is recognised; a leaked previous secret leaves ``leaked_hash``.
- ``…:acct:<id>:auth`` hash: name, api (0|1)
- ``…:acct:<id>:auth:user:<user id>`` hash: name, role
- ``…:auth:due`` sorted set, per partition: ``DUE_EXPIRY``/``DUE_PREVIOUS``/
  ``DUE_ACCOUNT_KEY`` ``:<account>:<key id>`` scored by the moment it is due, so
  that the expiry sweep reads only what is due (``workers.sweeps``)
- ``…:auth:leaked`` hash, per partition: ``<account>:<key id>`` -> report, account
  keys reported leaked that still work
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from keyledger.adapters.keyspace import Keyspace
from keyledger.domain import events as ev
from keyledger.domain.mapper import canonical_json, format_time

NAME = "auth"
DUE_EXPIRY, DUE_PREVIOUS, DUE_ACCOUNT_KEY = "expiry", "previous", "account-key"


def millis(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def due_member(kind: str, account_id: str, key_id: str) -> str:
    return f"{kind}:{account_id}:{key_id}"


def account_of_due(member: str) -> str:
    """The account id in a member of the due index."""
    return member.split(":", 1)[1].rsplit(":", 1)[0]


def subnets_key(record_key: str) -> str:
    return f"{record_key}:subnets"


def _key(keys: Keyspace, key_id: str) -> str:
    record = keys.auth_key(key_id)
    if record is None:
        raise ValueError("key id names no partition of this keyspace")
    return record


def apply(pipe: Any, keys: Keyspace, event: ev.Event) -> None:
    account = keys.auth_account(event.account_id)
    if isinstance(event, LIFECYCLE):
        apply_lifecycle(pipe, keys, event)
        return
    match event:
        case ev.AccountRegistered():
            pipe.hset(account, mapping={"name": event.name, "api": "0"})
        case ev.ApiEnabled():
            pipe.hset(account, "api", "1")
        case ev.ApiDisabled():
            pipe.hset(account, "api", "0")
        case ev.AccountKeyIssued():
            pipe.hset(
                _key(keys, event.key_id),
                mapping={"kind": "account", "account": event.account_id, "hash": event.key_hash},
            )
        case ev.AccountKeyRevoked():
            _account_key_gone(pipe, keys, event)
        case ev.UserAdded():
            pipe.hset(
                keys.auth_user(event.account_id, event.user_id),
                mapping={"name": event.name, "role": event.role},
            )
        case ev.UserRenamed():
            pipe.hset(keys.auth_user(event.account_id, event.user_id), "name", event.name)
        case ev.UserRoleChanged():
            pipe.hset(keys.auth_user(event.account_id, event.user_id), "role", event.role)
        case ev.UserRemoved():
            pipe.delete(keys.auth_user(event.account_id, event.user_id))
        case ev.SecretKeyCreated():
            record = _key(keys, event.key_id)
            pipe.hset(
                record,
                mapping={
                    "kind": "secret",
                    "account": event.account_id,
                    "user": event.user_id,
                    "name": event.name,
                    "hash": event.key_hash,
                    "enabled": "1",
                },
            )
            pipe.delete(subnets_key(record))
            if event.allowed_source_ips:
                pipe.sadd(subnets_key(record), *event.allowed_source_ips)
            if event.expires is not None:
                pipe.hset(record, "expires", millis(event.expires))
                _due(pipe, keys, event, DUE_EXPIRY, event.expires)
        case ev.SecretKeyDeleted():
            record = _key(keys, event.key_id)
            pipe.delete(record, subnets_key(record))
            _not_due(pipe, keys, event, DUE_EXPIRY, DUE_PREVIOUS)
        case ev.SourceSubnetAllowed():
            pipe.sadd(subnets_key(_key(keys, event.key_id)), event.cidr)
        case ev.SourceSubnetRemoved():
            pipe.srem(subnets_key(_key(keys, event.key_id)), event.cidr)
        case _:
            raise ValueError(f"auth projection does not know {type(event).__name__}")


LIFECYCLE = (
    ev.SecretKeyRotated,
    ev.PreviousSecretExpired,
    ev.PreviousSecretRevoked,
    ev.SecretKeyDisabled,
    ev.SecretKeyEnabled,
    ev.SecretKeyDescriptionChanged,
    ev.SecretKeyExpiryChanged,
    ev.SecretKeyExpired,
    ev.SecretKeyRevoked,
    ev.AccountKeyRetired,
    ev.PreviousAccountKeyExpired,
    ev.AccountKeyReportedLeaked,
)


def apply_lifecycle(pipe: Any, keys: Keyspace, event: Any) -> None:
    """The key-lifecycle events (docs/lifecycle.md); each names a key by ``key_id``."""
    record = _key(keys, event.key_id)
    match event:
        case ev.SecretKeyRotated():
            pipe.hset(record, "hash", event.key_hash)
            if event.previous_expires is not None:
                until = millis(event.previous_expires)
                pipe.hset(
                    record, mapping={"prev_hash": event.previous_key_hash, "prev_until": until}
                )
                _due(pipe, keys, event, DUE_PREVIOUS, event.previous_expires)
            else:
                pipe.hdel(record, "prev_hash", "prev_until")
                _not_due(pipe, keys, event, DUE_PREVIOUS)
        case ev.PreviousSecretExpired():
            pipe.hdel(record, "prev_hash", "prev_until")
            _not_due(pipe, keys, event, DUE_PREVIOUS)
        case ev.PreviousSecretRevoked():
            pipe.hdel(record, "prev_hash", "prev_until")
            pipe.hset(record, "leaked_hash", event.key_hash)
            _not_due(pipe, keys, event, DUE_PREVIOUS)
        case ev.SecretKeyDisabled():
            pipe.hset(record, "enabled", "0")
        case ev.SecretKeyEnabled():
            pipe.hset(record, "enabled", "1")
        case ev.SecretKeyDescriptionChanged():
            pass  # not needed to authenticate
        case ev.SecretKeyExpiryChanged():
            if event.expires is not None:
                pipe.hset(record, "expires", millis(event.expires))
                _due(pipe, keys, event, DUE_EXPIRY, event.expires)
            else:
                pipe.hdel(record, "expires")
                _not_due(pipe, keys, event, DUE_EXPIRY)
        case ev.SecretKeyExpired():
            _not_due(pipe, keys, event, DUE_EXPIRY)
        case ev.SecretKeyRevoked():
            pipe.delete(record, subnets_key(record))
            pipe.hset(
                record,
                mapping={
                    "kind": "revoked",
                    "account": event.account_id,
                    "hash": event.key_hash,
                    "reason": event.reason,
                },
            )
            _not_due(pipe, keys, event, DUE_EXPIRY, DUE_PREVIOUS)
        case ev.AccountKeyRetired():
            pipe.hset(record, "until", millis(event.expires))
            _due(pipe, keys, event, DUE_ACCOUNT_KEY, event.expires)
        case ev.PreviousAccountKeyExpired():
            _account_key_gone(pipe, keys, event)
        case ev.AccountKeyReportedLeaked():
            report = canonical_json({"url": event.url, "time": format_time(event.time)})
            pipe.hset(keys.leaked_account_keys(_partition(keys, event)), _member(event), report)
        case _:
            raise ValueError(f"auth projection does not know {type(event).__name__}")


def _partition(keys: Keyspace, event: ev.Event) -> int:
    return keys.partition_of(event.account_id)


def _member(event: Any) -> str:
    return f"{event.account_id}:{event.key_id}"


def _due(pipe: Any, keys: Keyspace, event: Any, kind: str, moment: datetime) -> None:
    member = due_member(kind, event.account_id, event.key_id)
    pipe.zadd(keys.due(_partition(keys, event)), {member: int(millis(moment))})


def _not_due(pipe: Any, keys: Keyspace, event: Any, *kinds: str) -> None:
    members = [due_member(kind, event.account_id, event.key_id) for kind in kinds]
    pipe.zrem(keys.due(_partition(keys, event)), *members)


def _account_key_gone(pipe: Any, keys: Keyspace, event: Any) -> None:
    pipe.delete(_key(keys, event.key_id))
    _not_due(pipe, keys, event, DUE_ACCOUNT_KEY)
    pipe.hdel(keys.leaked_account_keys(_partition(keys, event)), _member(event))
