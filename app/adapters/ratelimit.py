"""Rate limit per account key: N requests per minute (Redis Cloud: 400), shared by
every web process through one pipelined ``INCR`` + ``PEXPIRE`` per request.

Fixed one-minute windows: simple, one round trip, and the documented model's
behaviour; a client may burst up to twice the limit across a window boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from app.adapters.keyspace import Keyspace
from app.adapters.redis_client import store_call


@dataclass(frozen=True)
class Allowance:
    allowed: bool
    remaining: int
    retry_after: int


class RateLimiter:
    def __init__(
        self,
        client: redis.Redis,
        keyspace: Keyspace,
        per_minute: int,
        clock: Callable[[], float] = time.time,
    ):
        self.client = client
        self.keys = keyspace
        self.per_minute = per_minute
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    @store_call
    def hit(self, account_key_id: str) -> Allowance:
        now = self.clock()
        window = int(now // 60)
        key = self.keys.rate_limit(account_key_id, window)
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.pexpire(key, 61_000)
        count = int(pipe.execute()[0])
        retry_after = 60 - int(now % 60)
        return Allowance(count <= self.per_minute, max(self.per_minute - count, 0), retry_after)
