"""The authentication lookup: what a request needs, keyed by what it presents.

- ``…:auth:key:<key id>`` hash: kind (account|secret), account, hash, and for
  secret keys name and user; ``…:subnets`` beside it, a set of canonical CIDRs
- ``…:acct:<id>:auth`` hash: name, api (0|1)
- ``…:acct:<id>:auth:user:<user id>`` hash: name, role
"""

from __future__ import annotations

from typing import Any

from keyledger.adapters.keyspace import Keyspace
from keyledger.domain import events as ev

NAME = "auth"


def subnets_key(record_key: str) -> str:
    return f"{record_key}:subnets"


def _key(keys: Keyspace, key_id: str) -> str:
    record = keys.auth_key(key_id)
    if record is None:
        raise ValueError("key id names no partition of this keyspace")
    return record


def apply(pipe: Any, keys: Keyspace, event: ev.Event) -> None:
    account = keys.auth_account(event.account_id)
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
            pipe.delete(_key(keys, event.key_id))
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
                },
            )
            pipe.delete(subnets_key(record))
            if event.allowed_source_ips:
                pipe.sadd(subnets_key(record), *event.allowed_source_ips)
        case ev.SecretKeyDeleted():
            record = _key(keys, event.key_id)
            pipe.delete(record, subnets_key(record))
        case ev.SourceSubnetAllowed():
            pipe.sadd(subnets_key(_key(keys, event.key_id)), event.cidr)
        case ev.SourceSubnetRemoved():
            pipe.srem(subnets_key(_key(keys, event.key_id)), event.cidr)
        case _:
            raise ValueError(f"auth projection does not know {type(event).__name__}")
