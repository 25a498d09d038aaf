"""Reads the authentication projection: key, account and user records.

Two pipelined round trips: both keys first, then the account and the user
they point at. Records carry the stored argon2id hash next to the facts the
policies need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.topology import Client

if TYPE_CHECKING:
    from keyledger.adapters.authcache import AuthCache
from keyledger.adapters.redis_client import store_call
from keyledger.policies.facts import AccountKeyRecord, AccountRecord, SecretKeyRecord, UserRecord

ACCOUNT_KEY, SECRET_KEY = "account", "secret"


@dataclass(frozen=True)
class Lookup:
    account_key: AccountKeyRecord | None = None
    account_key_hash: str | None = None
    account: AccountRecord | None = None
    secret_key: SecretKeyRecord | None = None
    secret_key_hash: str | None = None
    #: The previous secret's hash while a rotation's grace period may run.
    previous_secret_hash: str | None = None
    user: UserRecord | None = None


def moment(millis: str | None) -> float | None:
    """A projected moment (epoch milliseconds) as epoch seconds; None when absent."""
    return None if not millis else int(millis) / 1000


class AuthLookup:
    def __init__(self, client: Client, keyspace: Keyspace, cache: AuthCache | None = None):
        self.client = client
        self.keys = keyspace
        self.cache = cache

    def fetch(self, account_key_id: str, secret_key_id: str) -> Lookup:
        """The records for a key pair: from process memory when warm, else from Redis."""
        epoch = None if self.cache is None else self.cache.sync()
        if self.cache is None or epoch is None:
            return self.fetch_from_redis(account_key_id, secret_key_id)
        pair = (account_key_id, secret_key_id)
        found = self.cache.get(pair)
        if found is None:
            found = self.fetch_from_redis(account_key_id, secret_key_id)
            self.cache.put(pair, found, epoch)
        return found

    @store_call
    def fetch_from_redis(self, account_key_id: str, secret_key_id: str) -> Lookup:
        ak_key, sk_key = self.keys.auth_key(account_key_id), self.keys.auth_key(secret_key_id)
        pipe = self.client.pipeline(transaction=False)
        if ak_key is not None:
            pipe.hgetall(ak_key)
        if sk_key is not None:
            pipe.hgetall(sk_key)
            pipe.smembers(f"{sk_key}:subnets")
        replies = iter(pipe.execute())
        ak = next(replies) if ak_key else {}
        sk = next(replies) if sk_key else {}
        subnets = tuple(sorted(next(replies))) if sk_key else ()
        ak = ak if ak.get("kind") == ACCOUNT_KEY else {}
        sk = sk if sk.get("kind") == SECRET_KEY else {}
        pipe = self.client.pipeline(transaction=False)
        if ak:
            pipe.hgetall(self.keys.auth_account(ak["account"]))
        if sk:
            pipe.hgetall(self.keys.auth_user(sk["account"], sk["user"]))
        replies = iter(pipe.execute())
        account = next(replies) if ak else {}
        user = next(replies) if sk else {}
        return Lookup(
            account_key=(
                AccountKeyRecord(account_key_id, ak["account"], moment(ak.get("until")))
                if ak
                else None
            ),
            account_key_hash=ak.get("hash"),
            account=(
                AccountRecord(ak["account"], account["name"], account.get("api") == "1")
                if account
                else None
            ),
            secret_key=(
                SecretKeyRecord(
                    secret_key_id,
                    sk["account"],
                    sk["name"],
                    sk["user"],
                    subnets,
                    enabled=sk.get("enabled", "1") != "0",
                    expires_at=moment(sk.get("expires")),
                    previous_expires_at=moment(sk.get("prev_until")),
                )
                if sk
                else None
            ),
            secret_key_hash=sk.get("hash"),
            previous_secret_hash=sk.get("prev_hash") or None,
            user=(
                UserRecord(sk["user"], sk["account"], user["name"], user["role"]) if user else None
            ),
        )

    @store_call
    def key_record(self, key_id: str) -> dict[str, str]:
        """The projected record of a key id as stored (empty when there is none)."""
        record_key = self.keys.auth_key(key_id)
        if record_key is None:
            return {}
        return {str(k): str(v) for k, v in self.client.hgetall(record_key).items()}
