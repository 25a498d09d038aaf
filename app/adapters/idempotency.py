"""Idempotency records for changes (``POST``, ``PUT``, ``DELETE``) carrying an
``Idempotency-Key``.

A retried request with the same key gets the first result and records nothing
new: a key creation retried after a timeout does not mint a second key. The
first result may contain a secret shown once, so the stored body is encrypted
(AES-256-GCM) under a key derived from the caller's own secret key, which is
presented with every request and stored nowhere: Redis holds only ciphertext
that nobody without that key can read.

A record goes through these states (JSON in one key of the account's partition):

- ``pending`` (a minute): the first request runs, under a lease of ``LEASE_MS``
  on the Redis clock: its append is refused after the lease (``EventStore.append``
  checks it in the same script), so once the lease has run out (plus a margin for
  the clocks of two primaries across a failover) a retry may take the record over
  and run: the first request can no longer make its change;
- ``unconfirmed`` (a day): the result and the version and chain hash of its
  change, written by the append script itself, atomically with the events
  (``Receipt``): the change and its result are in Redis together or not at all,
  whenever the server or Redis dies. ``unconfirmed``: no replica may hold them
  yet (without ``KEYLEDGER_MIN_REPLICAS`` the script writes ``done`` at once);
- ``done`` (a day): the result, replayed to every retry (the response as
  answered, once enough replicas confirmed the change).

A retry finding ``unconfirmed`` asks the log whether that version is there
(``EventStore.holds``, a check that the record and the log agree) and whether the
replicas hold it now (``EventStore.replicated``): then it replays the result.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import store_call
from keyledger.adapters.topology import Client

TTL_MS = 24 * 3600 * 1000
PENDING_TTL_MS = 60 * 1000
#: How long a request may take from its reservation to its append (then it is refused).
LEASE_MS = 15 * 1000
#: After a lease, how long a retry waits before taking the record over.
LEASE_MARGIN_MS = 1000

RESERVE_SCRIPT = """
-- KEYS[1]: the record; ARGV: fingerprint, token, lease (ms), margin (ms), pending TTL (ms)
-- Returns {state} or {'reserved', lease end (ms, Redis clock)}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local raw = redis.call('GET', KEYS[1])
if raw then
  local held = cjson.decode(raw)
  if held['fp'] ~= ARGV[1] then return {'mismatch'} end
  local lease = tonumber(held['lease'] or '0')
  if held['state'] ~= 'pending' or now <= lease + tonumber(ARGV[4]) then
    return {held['state']}
  end
end
local lease = now + tonumber(ARGV[3])
local value = cjson.encode({state = 'pending', fp = ARGV[1], token = ARGV[2],
                            lease = string.format('%d', lease)})
redis.call('SET', KEYS[1], value, 'PX', tonumber(ARGV[5]))
return {'reserved', string.format('%d', lease)}
"""
IF_MINE_SCRIPT = """
-- KEYS[1]: the record; ARGV: token, new value ('': delete), its TTL (ms)
-- Changes the record only while it is this request's (not taken over by a retry).
local raw = redis.call('GET', KEYS[1])
if not raw or cjson.decode(raw)['token'] ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
end
return 1
"""


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Receipt:
    """What the append script writes into the request's record, atomically with the
    events: the request's change is in the log, at this version and chain hash."""

    record: str
    account_id: str
    #: The record's value but for the change's version and hash: the sealed result,
    #: fingerprint, token and state (``IdempotencyStore.receipt``).
    sealed: dict[str, object]
    #: The end of the reservation's lease (epoch ms, Redis clock).
    lease_until: int
    ttl_ms: int = TTL_MS

    def recorded(self, version: int, digest: str) -> str:
        return json.dumps(
            {
                **self.sealed,
                "account": self.account_id,
                "version": version,
                "hash": digest,
                "at": _now_ms(),
            }
        )


@dataclass(frozen=True)
class Stored:
    status: int
    body: bytes
    content_type: str


class Reservation(StrEnum):
    RESERVED = "reserved"  # this request runs; complete() or release() follows
    IN_PROGRESS = "in_progress"  # the first request with this key is still running
    MISMATCH = "mismatch"  # the key was used for a different request
    DONE = "done"  # the first request finished: load() its result
    UNCONFIRMED = "unconfirmed"  # its change and result, which no replica confirmed


@dataclass(frozen=True)
class Change:
    """The change a ``recorded`` or ``unconfirmed`` record names, and when it was made."""

    account_id: str
    version: int
    digest: str
    at_ms: int


def _cipher(caller_secret: str, record: str) -> AESGCM:
    key = hmac.new(
        caller_secret.encode(), f"keyledger idempotency {record}".encode(), hashlib.sha256
    )
    return AESGCM(key.digest())


_STATES = {
    "pending": Reservation.IN_PROGRESS,
    "unconfirmed": Reservation.UNCONFIRMED,
    "done": Reservation.DONE,
}


@dataclass(frozen=True)
class Reserved:
    """A reservation this request holds: its token and the end of its lease."""

    token: str
    lease_until: int


class IdempotencyStore:
    def __init__(self, client: Client, keyspace: Keyspace):
        self.client = client
        self.keys = keyspace
        self._reserve = client.register_script(RESERVE_SCRIPT)
        self._if_mine = client.register_script(IF_MINE_SCRIPT)

    def record_key(self, account_id: str, secret_key_id: str, idempotency_key: str) -> str:
        """Scoped to the calling secret key (by id: a re-created key of the same name
        starts afresh)."""
        scope = hashlib.sha256(f"{secret_key_id}\0{idempotency_key}".encode()).hexdigest()
        return self.keys.idempotency(account_id, scope)

    @store_call
    def reserve(self, record: str, fingerprint: str) -> tuple[Reservation, Reserved | None]:
        """Reserve the record for this request, or say what holds it. A pending record
        whose lease ran out is taken over (its request can no longer append)."""
        token = base64.urlsafe_b64encode(os.urandom(12)).decode()
        reply = self._reserve(
            keys=[record], args=[fingerprint, token, LEASE_MS, LEASE_MARGIN_MS, PENDING_TTL_MS]
        )
        state = str(reply[0])
        if state == "reserved":
            return Reservation.RESERVED, Reserved(token, int(reply[1]))
        if state == "mismatch":
            return Reservation.MISMATCH, None
        return _STATES.get(state, Reservation.IN_PROGRESS), None

    @store_call
    def change(self, record: str) -> Change | None:
        """The change a ``recorded`` or ``unconfirmed`` record names (None: no such record)."""
        raw = self.client.get(record)
        if raw is None:
            return None
        data = json.loads(str(raw))
        if "version" not in data:
            return None
        return Change(
            str(data["account"]), int(data["version"]), str(data["hash"]), int(data["at"])
        )

    def receipt(
        self,
        record: str,
        account_id: str,
        held: Reserved,
        fingerprint: str,
        caller_secret: str,
        result: Stored,
        durable: bool,
    ) -> Receipt:
        """What the append script writes with the change: ``result`` sealed, ``done`` when
        the change is durable once appended, else ``unconfirmed``."""
        state = "done" if durable else "unconfirmed"
        sealed = self._sealed(record, held, fingerprint, caller_secret, result, state)
        return Receipt(record, account_id, sealed, held.lease_until)

    @store_call
    def confirmed(self, record: str) -> None:
        """An ``unconfirmed`` result is now held by enough replicas: replay it as done."""
        raw = self.client.get(record)
        if raw is None:
            return
        data = json.loads(str(raw))
        if data.get("state") == "unconfirmed":
            data["state"] = "done"
            self.client.set(record, json.dumps(data), px=TTL_MS)

    @store_call
    def load(self, record: str, caller_secret: str) -> Stored | None:
        raw = self.client.get(record)
        if raw is None:
            return None
        data = json.loads(str(raw))
        if "body" not in data:
            return None
        blob = base64.b64decode(data["body"])
        try:
            body = _cipher(caller_secret, record).decrypt(blob[:12], blob[12:], record.encode())
        except InvalidTag:
            return None
        return Stored(int(data["status"]), body, str(data["type"]))

    @store_call
    def complete(
        self, record: str, held: Reserved, fingerprint: str, caller_secret: str, result: Stored
    ) -> None:
        value = self._sealed(record, held, fingerprint, caller_secret, result, "done")
        self._if_mine(keys=[record], args=[held.token, json.dumps(value), TTL_MS])

    @staticmethod
    def _sealed(
        record: str,
        held: Reserved,
        fingerprint: str,
        caller_secret: str,
        result: Stored,
        state: str,
    ) -> dict[str, object]:
        nonce = os.urandom(12)
        sealed = nonce + _cipher(caller_secret, record).encrypt(nonce, result.body, record.encode())
        return {
            "state": state,
            "fp": fingerprint,
            "token": held.token,
            "status": result.status,
            "type": result.content_type,
            "body": base64.b64encode(sealed).decode(),
        }

    @store_call
    def release(self, record: str, held: Reserved | None = None) -> None:
        """Drop the record: this request's own (``held``: only while still its), or one
        whose change is known not to be in the log."""
        if held is None:
            self.client.delete(record)
        else:
            self._if_mine(keys=[record], args=[held.token, "", 0])
