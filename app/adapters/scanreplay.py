"""Answers to signed secret-scanning reports, kept a while by the digest of the body.

A signed report replayed as is (same bytes) would make keyledger run argon2 for each
of its tokens again, up to 1,000 tokens a request. The answer to a report depends only
on the tokens in it, and the first handling already revoked whatever it found, so the
same body within ``ttl`` seconds is answered with the stored answer and no hashing.
The key is the SHA-256 of the body; the value is the answer (token SHA-256s and
labels, as sent to GitHub): no token is ever stored.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import store_call
from keyledger.adapters.topology import Client

#: How long an answer is kept: GitHub retries a failed delivery within minutes.
REPLAY_SECONDS = 3600


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class ReportAnswers:
    def __init__(self, client: Client, keyspace: Keyspace, ttl: int = REPLAY_SECONDS):
        self.client, self.keys, self.ttl = client, keyspace, ttl

    @store_call
    def answered(self, digest: str) -> list[dict[str, Any]] | None:
        """The answer given to the report with this body digest, within ``ttl``."""
        raw = self.client.get(self.keys.scan_answer(digest))
        if raw is None:
            return None
        answer = json.loads(str(raw))
        return answer if isinstance(answer, list) else None

    @store_call
    def remember(self, digest: str, answer: list[dict[str, Any]]) -> None:
        self.client.set(
            self.keys.scan_answer(digest), json.dumps(answer, separators=(",", ":")), ex=self.ttl
        )
