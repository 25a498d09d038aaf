"""Shared by the lifecycle tests: a clock the test moves, and GitHub's signing side."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


class Clock:
    """The one time source of a container (``build(settings, clock)``), moved by hand."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class GitHubSigner:
    """Plays GitHub: a P-256 key pair, its public-keys document, and signed reports."""

    def __init__(self, identifier: str = "github-test-key-1"):
        self.identifier = identifier
        self.private = ec.generate_private_key(ec.SECP256R1())

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def write_keys_file(self, path: Path, *others: GitHubSigner) -> Path:
        entries = [
            {"key_identifier": s.identifier, "key": s.public_pem(), "is_current": s is self}
            for s in (self, *others)
        ]
        path.write_text(json.dumps({"public_keys": entries}))
        return path

    def sign(self, body: bytes) -> str:
        return base64.b64encode(self.private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()

    def headers(self, body: bytes, identifier: str | None = None) -> dict[str, str]:
        return {
            "Github-Public-Key-Identifier": identifier or self.identifier,
            "Github-Public-Key-Signature": self.sign(body),
            "Content-Type": "application/json",
        }


def report(*tokens: str, url: str = "https://github.com/acme/app/blob/main/.env") -> bytes:
    """A report as GitHub sends it (the raw bytes the signature covers)."""
    return json.dumps(
        [
            {"token": token, "type": "keyledger_secret_key", "url": url, "source": "content"}
            for token in tokens
        ]
    ).encode()
