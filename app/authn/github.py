"""GitHub's signature on secret scanning reports: ECDSA P-256 with SHA-256.

GitHub signs the raw request body (never re-serialised JSON) and names the key in
``Github-Public-Key-Identifier``; the signature in ``Github-Public-Key-Signature``
is base64 of the DER (ASN.1 r, s) encoding. The public keys come from a file in the
format of GitHub's ``meta/public_keys/secret_scanning`` document,
``{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}``, named by
``KEYLEDGER_SECRET_SCANNING_KEYS``. Every listed key is accepted (GitHub keeps
signing with a key for a while after it stops being current). The file is read
again when it changes; a changed file that cannot be read leaves the last good set
in use (and says so in the log), so a half-written file never locks GitHub out.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

log = logging.getLogger("keyledger.scanning")

MAX_KEYS_FILE = 1024 * 1024


class KeysFileError(ValueError):
    """The public-keys document cannot be used; the message says why."""


@dataclass(frozen=True)
class KeySet:
    keys: dict[str, ec.EllipticCurvePublicKey]
    version: tuple[int, int, int]  # the file's (mtime_ns, size, inode) when read


def version_of(stat: os.stat_result) -> tuple[int, int, int]:
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def parse_keys(text: str) -> dict[str, ec.EllipticCurvePublicKey]:
    """The P-256 public keys of a public-keys document, by identifier."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise KeysFileError(f"not JSON: {exc}") from None
    entries = document.get("public_keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise KeysFileError('expected {"public_keys": [{"key_identifier", "key", ...}, ...]}')
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for number, entry in enumerate(entries):
        identifier = entry.get("key_identifier") if isinstance(entry, dict) else None
        pem = entry.get("key") if isinstance(entry, dict) else None
        if not isinstance(identifier, str) or not identifier or not isinstance(pem, str):
            raise KeysFileError(f"public_keys[{number}] needs key_identifier and key (PEM)")
        try:
            key = load_pem_public_key(pem.encode())
        except ValueError as exc:
            raise KeysFileError(
                f"public_keys[{number}].key is not a PEM public key: {exc}"
            ) from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise KeysFileError(f"public_keys[{number}].key is not an ECDSA P-256 key")
        keys[identifier] = key
    return keys


class GitHubSignatures:
    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._set = self._read()  # at start-up a bad file is an error, loudly

    def _read(self) -> KeySet:
        try:
            stat = os.stat(self.path)
            if stat.st_size > MAX_KEYS_FILE:
                raise KeysFileError("larger than 1 MiB")
            with open(self.path, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise KeysFileError(f"cannot read it: {exc}") from None
        return KeySet(parse_keys(text), version_of(stat))

    def keys(self) -> dict[str, ec.EllipticCurvePublicKey]:
        """The current key set: read again when the file changed, else the last good one."""
        try:
            changed = version_of(os.stat(self.path)) != self._set.version
        except OSError:
            changed = False
        if changed:
            with self._lock:
                try:
                    self._set = self._read()
                except KeysFileError as exc:
                    log.error(
                        "KEYLEDGER_SECRET_SCANNING_KEYS %s unusable (%s); keeping the last "
                        "good keys",
                        self.path,
                        exc,
                    )
        return self._set.keys

    def verify(self, identifier: str | None, signature: str | None, body: bytes) -> str | None:
        """None when ``signature`` is GitHub's over ``body`` with the named key, else why not."""
        if not identifier or not signature:
            return "Github-Public-Key-Identifier and Github-Public-Key-Signature are required"
        key = self.keys().get(identifier)
        if key is None:
            return "unknown Github-Public-Key-Identifier"
        try:
            der = base64.b64decode(signature, validate=True)
            key.verify(der, body, ec.ECDSA(hashes.SHA256()))
        except (binascii.Error, ValueError, InvalidSignature):
            return "Github-Public-Key-Signature does not verify"
        return None
