"""Rate limit per account key: N requests per minute (Redis Cloud: 400), shared by
every web process through one script call per request.

Fixed one-minute windows on the Redis server's clock (so web hosts with skewed
clocks agree): simple, one round trip, and the documented model's behaviour; a
client may burst up to twice the limit across a window boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import store_call
from keyledger.adapters.topology import Client

HIT_SCRIPT = """
-- KEYS[1]: the account key's counter hash {window, count}
redis.replicate_commands()
local now = redis.call('TIME')
local window = tostring(math.floor(tonumber(now[1]) / 60))
local count
if redis.call('HGET', KEYS[1], 'window') == window then
  count = redis.call('HINCRBY', KEYS[1], 'count', 1)
else
  redis.call('HSET', KEYS[1], 'window', window, 'count', 1)
  count = 1
end
redis.call('PEXPIRE', KEYS[1], 61000)
return {count, 60 - (tonumber(now[1]) % 60)}
"""


@dataclass(frozen=True)
class Allowance:
    allowed: bool
    remaining: int
    retry_after: int


class RateLimiter:
    def __init__(self, client: Client, keyspace: Keyspace, per_minute: int):
        self.client = client
        self.keys = keyspace
        self.per_minute = per_minute
        self._hit = client.register_script(HIT_SCRIPT)

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    @store_call
    def hit(self, account_key_id: str) -> Allowance:
        count, retry_after = self._hit(keys=[self.keys.rate_limit(account_key_id)])
        count = int(count)
        return Allowance(
            count <= self.per_minute, max(self.per_minute - count, 0), int(retry_after)
        )
