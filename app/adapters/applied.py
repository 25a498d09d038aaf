"""Read-your-writes: wait until the projector has applied a log entry.

The projector stores, per partition and projection, the id of the last log
entry it applied (atomically with the change itself). A change is in effect
for every web process once both checkpoints have reached its entry.
"""

from __future__ import annotations

import time

from keyledger.adapters.keyspace import PROJECTIONS, Keyspace
from keyledger.adapters.redis_client import store_call, stream_id
from keyledger.adapters.topology import Client


class AppliedWatch:
    def __init__(self, client: Client, keyspace: Keyspace):
        self.client = client
        self.keys = keyspace

    @store_call
    def is_applied(self, partition: int, entry_id: str) -> bool:
        target = stream_id(entry_id)
        checkpoints = self.client.mget([self.keys.checkpoint(p, partition) for p in PROJECTIONS])
        return all(c is not None and stream_id(str(c)) >= target for c in checkpoints)

    def wait(self, partition: int, entry_id: str, timeout: float) -> bool:
        """True once applied; False when ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while True:
            if self.is_applied(partition, entry_id):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
