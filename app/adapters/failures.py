"""Failed authentications counted in Redis, so that every web process sees them.

One hash per network (IPv4 /24, IPv6 /48) and one-minute window on the Redis
server's clock (web hosts with skewed clocks agree): the network's count, its
sources' counts and its (source, key id) pairs' counts, read or counted in one
script call. One key per network keeps every call in one hash slot and lets
the whole hash expire with its window. Only failures that cost an argon2
verification come here (``keyledger.authn.throttle``), at most a few per second
per process, so the hashes stay small.
"""

from __future__ import annotations

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import store_call
from keyledger.adapters.topology import Client
from keyledger.authn.throttle import WINDOW, Subject, Tally

COUNT_SCRIPT = """
-- KEYS[1]: failure counts of one network in the current window
-- ARGV[1]: window length in seconds; ARGV[2]: '1' counts one failure, '0' only reads
-- ARGV[3..]: the fields (network, source, source and key id pairs)
redis.replicate_commands()
local now = tonumber(redis.call('TIME')[1])
local length = tonumber(ARGV[1])
local window = tostring(math.floor(now / length))
local current = redis.call('HGET', KEYS[1], 'window') == window
local counts = {length - (now % length)}
if ARGV[2] == '1' then
  if not current then
    redis.call('DEL', KEYS[1])
    redis.call('HSET', KEYS[1], 'window', window)
  end
  for i = 3, #ARGV do counts[i - 1] = redis.call('HINCRBY', KEYS[1], ARGV[i], 1) end
  redis.call('PEXPIRE', KEYS[1], (length + 1) * 1000)
else
  for i = 3, #ARGV do
    local count = 0
    if current then count = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0') end
    counts[i - 1] = count
  end
end
return counts
"""


def fields(subject: Subject) -> list[str]:
    return ["n", f"s:{subject.source}", *(f"p:{subject.source}|{key}" for key in subject.key_ids)]


class SharedFailureCounts:
    def __init__(self, client: Client, keyspace: Keyspace):
        self.client = client
        self.keys = keyspace
        self._count = client.register_script(COUNT_SCRIPT)

    def _call(self, subject: Subject, add: bool) -> Tally:
        reply = self._count(
            keys=[self.keys.failures(subject.network)],
            args=[WINDOW, "1" if add else "0", *fields(subject)],
        )
        retry_after, network, source, *pairs = (int(value) for value in reply)
        return Tally(network, source, tuple(pairs), retry_after)

    @store_call
    def read(self, subject: Subject) -> Tally:
        return self._call(subject, add=False)

    @store_call
    def add(self, subject: Subject) -> Tally:
        return self._call(subject, add=True)
