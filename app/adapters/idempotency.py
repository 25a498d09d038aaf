"""Idempotency records for ``POST`` requests carrying an ``Idempotency-Key``.

A retried request with the same key gets the first result and records nothing
new: a key creation retried after a timeout does not mint a second key. The
first result may contain a secret shown once, so the stored body is encrypted
(AES-256-GCM) under a key derived from the caller's own secret key, which is
presented with every request and stored nowhere: Redis holds only ciphertext
that nobody without that key can read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from enum import StrEnum

import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import store_call

TTL_MS = 24 * 3600 * 1000
PENDING_TTL_MS = 60 * 1000


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


def _cipher(caller_secret: str, record: str) -> AESGCM:
    key = hmac.new(
        caller_secret.encode(), f"keyledger idempotency {record}".encode(), hashlib.sha256
    )
    return AESGCM(key.digest())


class IdempotencyStore:
    def __init__(self, client: redis.Redis, keyspace: Keyspace):
        self.client = client
        self.keys = keyspace

    def record_key(self, account_id: str, secret_key_id: str, idempotency_key: str) -> str:
        """Scoped to the calling secret key (by id: a re-created key of the same name
        starts afresh)."""
        scope = hashlib.sha256(f"{secret_key_id}\0{idempotency_key}".encode()).hexdigest()
        return self.keys.idempotency(account_id, scope)

    @store_call
    def reserve(self, record: str, fingerprint: str) -> Reservation:
        pending = json.dumps({"state": "pending", "fp": fingerprint})
        for _ in range(2):  # a record can expire between SET NX and GET: look twice
            if self.client.set(record, pending, nx=True, px=PENDING_TTL_MS):
                return Reservation.RESERVED
            raw = self.client.get(record)
            if raw is not None:
                data = json.loads(str(raw))
                if data["fp"] != fingerprint:
                    return Reservation.MISMATCH
                return Reservation.IN_PROGRESS if data["state"] == "pending" else Reservation.DONE
        return Reservation.IN_PROGRESS

    @store_call
    def load(self, record: str, caller_secret: str) -> Stored | None:
        raw = self.client.get(record)
        if raw is None:
            return None
        data = json.loads(str(raw))
        blob = base64.b64decode(data["body"])
        try:
            body = _cipher(caller_secret, record).decrypt(blob[:12], blob[12:], record.encode())
        except InvalidTag:
            return None
        return Stored(int(data["status"]), body, str(data["type"]))

    @store_call
    def complete(self, record: str, fingerprint: str, caller_secret: str, result: Stored) -> None:
        nonce = os.urandom(12)
        sealed = nonce + _cipher(caller_secret, record).encrypt(nonce, result.body, record.encode())
        value = {
            "state": "done",
            "fp": fingerprint,
            "status": result.status,
            "type": result.content_type,
            "body": base64.b64encode(sealed).decode(),
        }
        self.client.set(record, json.dumps(value), px=TTL_MS)

    @store_call
    def release(self, record: str) -> None:
        self.client.delete(record)
