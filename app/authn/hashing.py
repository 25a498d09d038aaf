"""argon2id hashing of keys, and a per-process memory of successful verifications.

Keys are stored only as argon2id PHC strings, with parameters sized to a secret
of 256 random bits rather than to a password (``docs/hashing.md``): one pass
over 256 KiB, a fraction of a millisecond. Hashes written with the earlier
OWASP password parameters keep verifying; a stored hash with any other
parameters is refused without computing (a tampered ``m=4GiB`` would be a
denial of service). Each process still verifies a given key once and then
remembers the success under a keyed BLAKE2b digest of the presented key (the
pepper never leaves process memory). A remembered success counts only while the
stored hash is unchanged: a rotated or deleted key is never accepted from memory.
During a rotation's grace period a key has two hashes (``verify_any``); a success
remembered for the previous one counts only while the record still holds it, and
whether its grace still runs is for the policies to say, at every request.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from collections import OrderedDict

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from keyledger.observability.observer import IGNORE, Observer

#: New hashes: one pass over 256 KiB (docs/hashing.md says why this is enough).
TIME_COST = 1
MEMORY_COST = 256
PARALLELISM = 1


def phc_prefix(memory_cost: int, time_cost: int, parallelism: int) -> str:
    """The start of an argon2id (version 19) PHC string with these parameters."""
    return f"$argon2id$v=19$m={memory_cost},t={time_cost},p={parallelism}$"


POLICY_PREFIX = phc_prefix(MEMORY_COST, TIME_COST, PARALLELISM)
#: The OWASP password minimum that keys were hashed with before: still verified.
OWASP_PREFIX = phc_prefix(19456, 2, 1)
#: Every parameter set a stored hash may have; anything else is refused unread.
ACCEPTED_PREFIXES = (POLICY_PREFIX, OWASP_PREFIX)


class KeyHasher:
    def __init__(self, cache_size: int = 100_000, max_concurrent: int | None = None):
        self._hasher = PasswordHasher(
            time_cost=TIME_COST,
            memory_cost=MEMORY_COST,
            parallelism=PARALLELISM,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._pepper = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, str] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrent or os.cpu_count() or 2)
        self.argon2_verifications = 0
        #: Told whether each check was answered from memory (metrics).
        self.observer: Observer = IGNORE
        self._decoy = self._hasher.hash(secrets.token_urlsafe(32))

    def hash(self, token: str) -> str:
        return self._hasher.hash(token)

    def _digest(self, token: str) -> bytes:
        return hashlib.blake2b(token.encode(), key=self._pepper, digest_size=32).digest()

    def burn(self, token: str) -> None:
        """Spend what a failed verification costs, for a key id that does not exist."""
        self.observer.key_verified(False)
        with self._slots:
            self.argon2_verifications += 1
            with contextlib.suppress(VerificationError, InvalidHashError):
                self._hasher.verify(self._decoy, token)

    def _remembered(self, digest: bytes, stored_hashes: tuple[str, ...]) -> int | None:
        """The index of the stored hash this process verified the digest's key against."""
        # No lock on this path every request takes (as in AuthCache.get): each
        # OrderedDict call is one step under the GIL.
        remembered = self._verified.get(digest)
        if remembered is not None and len(self._verified) * 2 > self._cache_size:
            # Least recently used is dropped first; below half full nothing is near
            # being dropped (as in AuthCache.get).
            with contextlib.suppress(KeyError):
                self._verified.move_to_end(digest)
        if remembered is not None:
            for index, stored_hash in enumerate(stored_hashes):
                # The same string object when the record is the one verified (the usual
                # case); else compared in constant time. Neither is the caller's input.
                if remembered is stored_hash or hmac.compare_digest(
                    remembered.encode(), stored_hash.encode()
                ):
                    return index
        return None

    def recall(self, stored_hashes: tuple[str, ...], token: str) -> int | None:
        """``verify_any`` answered from memory only: the index of the stored hash this
        process verified ``token`` against, or None when it has not. Nothing is counted:
        a caller that goes by the answer says so with ``recalled``."""
        return self._remembered(self._digest(token), stored_hashes)

    def recalled(self, keys: int) -> None:
        """Count ``keys`` verifications answered by ``recall`` (metrics)."""
        for _ in range(keys):
            self.observer.key_verified(True)

    def verify(self, stored_hash: str, token: str) -> bool:
        """True when ``token`` matches ``stored_hash``; argon2 runs once per key and process."""
        return self.verify_any((stored_hash,), token) == 0

    def verify_any(self, stored_hashes: tuple[str, ...], token: str) -> int | None:
        """The index of the hash ``token`` matches (remembered, else argon2 in order), or None."""
        digest = self._digest(token)
        index = self._remembered(digest, stored_hashes)
        if index is not None:
            self.observer.key_verified(True)
            return index
        self.observer.key_verified(False)
        for index, stored_hash in enumerate(stored_hashes):
            if self._argon2(stored_hash, token):
                with self._lock:
                    self._verified[digest] = stored_hash
                    while len(self._verified) > self._cache_size:
                        self._verified.popitem(last=False)
                return index
        return None

    def _argon2(self, stored_hash: str, token: str) -> bool:
        if not stored_hash.isascii() or not stored_hash.startswith(ACCEPTED_PREFIXES):
            return False  # foreign parameters (maybe a tampered m=4GiB): refuse without computing
        with self._slots:
            self.argon2_verifications += 1
            try:
                self._hasher.verify(stored_hash, token)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False
        return True
