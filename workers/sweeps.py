"""The expiry sweep: write down the expiries and grace ends the clock has passed.

It decides nothing about access: a key stops working at its instant because the
policies compare the projected record with the clock. The sweep only appends the
events (``SecretKeyExpired``, ``PreviousSecretExpired``,
``PreviousAccountKeyExpired``, actor ``keyledger``) so that the system log says
when and why a key stopped working.

The auth projection keeps an index of what is due (``Keyspace.due``), so a sweep
reads only the accounts with something due, and each account's decision
(``RecordExpiries``) is taken against its current state: a second sweep, or two
at once, append nothing more. The scheduler (``keyledger scheduler``) enqueues one
sweep every ``KEYLEDGER_SWEEP_SECONDS`` on the RQ queue; the Procfile's ``worker``
runs it (JSON serializer, explicit timeouts).
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import REDIS_ERRORS
from keyledger.adapters.topology import Client
from keyledger.bootstrap import build, check_partitions
from keyledger.config import Settings
from keyledger.domain.errors import ConcurrencyConflict, KeyledgerError
from keyledger.domain.events import SYSTEM
from keyledger.service import Ledger
from keyledger.workers.projections.auth import account_of_due

log = logging.getLogger("keyledger.sweep")

JOB = "keyledger.workers.sweeps.record_expiries"
JOB_TIMEOUT = 300  # seconds a sweep may run
RESULT_TTL = 3600
FAILURE_TTL = 7 * 24 * 3600
ATTEMPTS = 3


class Sweeper:
    def __init__(self, client: Client, keyspace: Keyspace, ledger: Ledger):
        self.client = client
        self.keys = keyspace
        self.ledger = ledger

    def due_accounts(self) -> list[str]:
        """Accounts with an expiry or a grace end at or before now, per the index."""
        now = int(self.ledger.clock().timestamp() * 1000)
        pipe = self.client.pipeline(transaction=False)
        for partition in range(self.keys.partitions):
            pipe.zrangebyscore(self.keys.due(partition), "-inf", now)
        accounts = {account_of_due(str(m)) for members in pipe.execute() for m in members}
        return sorted(accounts)

    def run(self) -> dict[str, Any]:
        """Record what is due in every account; a JSON-safe summary."""
        accounts, recorded, failed = self.due_accounts(), 0, 0
        for account_id in accounts:
            try:
                recorded += self._record(account_id)
            except KeyledgerError as exc:
                failed += 1
                log.error("could not record the expiries of account %s: %s", account_id, exc)
        if recorded:
            log.info("recorded %d expiries in %d accounts", recorded, len(accounts))
        return {"accounts": len(accounts), "recorded": recorded, "failed": failed}

    def _record(self, account_id: str) -> int:
        for attempt in range(ATTEMPTS):
            try:
                return len(self.ledger.record_expiries(account_id, SYSTEM).events)
            except ConcurrencyConflict:
                if attempt == ATTEMPTS - 1:
                    raise
        return 0


def record_expiries(namespace: str, partitions: int) -> dict[str, Any]:
    """The RQ job: one sweep of the keyspace, with the worker's own ``REDIS_URL``."""
    container = build(Settings.from_env(namespace=namespace, partitions=partitions))
    check_partitions(container.redis, container.keyspace)
    return Sweeper(container.redis, container.keyspace, container.ledger).run()


class Scheduler:
    """Enqueues a sweep every ``every`` seconds; with several schedulers, one of them.

    A lease (``SET NX PX``, a little shorter than the interval) elects who enqueues
    each time; a sweep still queued or running is not enqueued again beside it.
    """

    def __init__(
        self,
        data: Client,
        queue_client: redis.Redis,
        keyspace: Keyspace,
        every: float,
        queue: str,
    ):
        self.data = data
        self.queue = Queue(queue, connection=queue_client, serializer=JSONSerializer)
        self.keys = keyspace
        self.every = every
        self._last: Job | None = None

    def tick(self) -> Job | None:
        """Enqueue a sweep if this scheduler holds the lease and none is pending."""
        lease_ms = max(int(self.every * 900), 1)
        if not self.data.set(self.keys.sweep_lease(), uuid.uuid4().hex, nx=True, px=lease_ms):
            return None
        if self._last is not None and self._last.get_status(refresh=True) in (
            JobStatus.QUEUED,
            JobStatus.STARTED,
        ):
            return None
        self._last = self.queue.enqueue(
            JOB,
            kwargs={"namespace": self.keys.namespace, "partitions": self.keys.partitions},
            job_id=f"expiry-sweep-{uuid.uuid4().hex}",
            job_timeout=JOB_TIMEOUT,
            ttl=max(60, int(self.every * 4)),  # not started by then: the next one will do
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            description="record the expiries and grace ends that are due",
        )
        return self._last

    def run(self, stop: threading.Event) -> None:
        log.info("scheduling an expiry sweep every %s s on queue %s", self.every, self.queue.name)
        while not stop.is_set():
            try:
                self.tick()
            except REDIS_ERRORS as exc:
                log.warning("redis unavailable (%s); retrying", type(exc).__name__)
            stop.wait(self.every)
