"""One rebuild shared by several RQ workers: which partitions are left, who takes part.

A rebuild job (the *lead*) enqueues helper jobs, one per other worker serving the
queue, and then works like them: each participant takes the next partition from the
run's list (``LPOP``), rebuilds it (replay, check, atomic switch, as
``Rebuilder.rebuild_partition`` always did) and takes another, until none is left.
So a rebuild runs as wide as the workers free to serve it, and alone when there is
none: the lead never waits for a helper to start. When the list is empty the lead
*closes* the run; a helper that starts after that joins nothing and ends at once,
and the lead waits only for the helpers that joined before, each of which marks
when it leaves (or stops sending heartbeats: a killed worker).

Everything lives in a few keys of the data's Redis beside the rebuild locks
(``<ns>:rebuild:run:<job id>:...``), each a single key, so a cluster routes them
like any other; they expire a day after the last write. Progress (log entries
read) and the totals of every participant are summed in the run's hash; the lead
copies them into its job's meta, which the progress bar reads.
"""

from __future__ import annotations

import time
from typing import Any

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.topology import Client

RUN_TTL = 24 * 3600  # seconds the run's keys outlive their last write
STALE_AFTER = 300.0  # seconds without a heartbeat after which a helper is taken for dead

JOIN_SCRIPT = """
-- KEYS: the run's hash; ARGV: helper id, now (s), ttl
if redis.call('HEXISTS', KEYS[1], 'closed') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'joined:' .. ARGV[1], ARGV[2], 'beat:' .. ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
CLOSE_SCRIPT = """
-- KEYS: the run's hash; ARGV: ttl. Returns the helpers that joined.
redis.call('HSET', KEYS[1], 'closed', '1')
redis.call('EXPIRE', KEYS[1], ARGV[1])
local joined = {}
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, 7) == 'joined:' then joined[#joined + 1] = string.sub(field, 8) end
end
return joined
"""


class RebuildRun:
    def __init__(self, client: Client, keyspace: Keyspace, run_id: str):
        self.client = client
        base = f"{keyspace.namespace}:rebuild:run:{run_id}"
        self.state, self.todo = f"{base}:state", f"{base}:todo"
        self._join = client.register_script(JOIN_SCRIPT)
        self._close = client.register_script(CLOSE_SCRIPT)

    # -- the lead --------------------------------------------------------------------------
    def open(self, partitions: int, total: int) -> None:
        self.client.delete(self.todo, self.state)
        self.client.rpush(self.todo, *range(partitions))
        self.client.expire(self.todo, RUN_TTL)
        self.client.hset(self.state, mapping={"partitions": partitions, "total": total})
        self.client.expire(self.state, RUN_TTL)

    def close(self) -> list[str]:
        """No helper may join from now on; the ids of those that did."""
        return [str(h) for h in self._close(keys=[self.state], args=[RUN_TTL])]

    def running(self, helpers: list[str]) -> list[str]:
        """The helpers that joined, have not left and sent a heartbeat lately."""
        values = self.client.hgetall(self.state)
        now = time.time()
        return [
            h
            for h in helpers
            if f"left:{h}" not in values and now - float(values.get(f"beat:{h}", 0)) < STALE_AFTER
        ]

    def drop(self) -> None:
        self.client.delete(self.todo, self.state)

    # -- every participant -----------------------------------------------------------------
    def join(self, helper: str) -> bool:
        return bool(self._join(keys=[self.state], args=[helper, time.time(), RUN_TTL]))

    def leave(self, helper: str) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(self.state, f"left:{helper}", time.time())
            pipe.expire(self.state, RUN_TTL)  # a write after the lead dropped it expires too
            pipe.execute()

    def beat(self, helper: str, read: int) -> None:
        """A heartbeat, and ``read`` more log entries read."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(self.state, f"beat:{helper}", time.time())
            if read:
                pipe.hincrby(self.state, "done", read)
            pipe.expire(self.state, RUN_TTL)
            pipe.execute()

    def claim(self) -> int | None:
        """The next partition to rebuild, or None when none is left or the run failed."""
        if self.client.hexists(self.state, "error"):
            return None
        taken = self.client.lpop(self.todo)
        return None if taken is None else int(str(taken))

    def fail(self, message: str) -> None:
        """The first error stops every participant at its next claim."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hsetnx(self.state, "error", message)
            pipe.expire(self.state, RUN_TTL)
            pipe.delete(self.todo)
            pipe.execute()

    def add(self, totals: dict[str, int]) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            for name, value in totals.items():
                if value:
                    pipe.hincrby(self.state, name, value)
            pipe.expire(self.state, RUN_TTL)
            pipe.execute()

    def snapshot(self) -> dict[str, Any]:
        values = {str(k): str(v) for k, v in self.client.hgetall(self.state).items()}
        return values
