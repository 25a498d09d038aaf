"""Background jobs on the RQ queue ``keyledger``: projection rebuilds.

Jobs take JSON-safe arguments, run with RQ's JSON serializer (never pickle) and
explicit timeouts (RQ's default of 180 s is too short for a rebuild). The job
names only the namespace and partition count; the worker connects to the data
from its own environment (``REDIS_URL``, ``KEYLEDGER_REDIS_CLUSTER``), like every
keyledger process. RQ does not support Redis Cluster: its queue is the plain
Redis of ``KEYLEDGER_QUEUE_URL`` (required with a cluster; else the data's Redis).

One rebuild per projection at a time. ``enqueue_rebuild`` takes a lock per
projection (``SET NX PX``, the value is the job id) before it enqueues; the job
holds the locks while it runs, renewing them as it reports progress, and
releases them (compare-and-delete) when it ends. A lock left behind by a job
that ended without releasing it (a killed worker) is taken over.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis
from rq import Queue, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import connect
from keyledger.adapters.topology import Client
from keyledger.bootstrap import check_partitions, keyspace_of
from keyledger.config import Settings
from keyledger.domain.errors import Conflict
from keyledger.workers.rebuild import Progress, Rebuilder, RebuildError

QUEUE = "keyledger"
JOB_TIMEOUT = 3600  # seconds a rebuild may run before RQ stops it
QUEUED_TTL = 24 * 3600  # a job no worker started within a day is dropped
RESULT_TTL = FAILURE_TTL = 7 * 24 * 3600
QUEUED_LOCK_MS = (QUEUED_TTL + JOB_TIMEOUT) * 1000
RUNNING_LOCK_MS = 5 * 60 * 1000  # renewed at every progress report
ENQUEUE_GRACE_MS = 30_000  # a lock this fresh is never stale, even before its job exists
REPORT_EVERY = 0.5  # seconds between saves of the job's progress
DATA_SOCKET_TIMEOUT = 120.0  # a switch of a large partition is one long script
ENDED = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})

RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class RebuildInProgress(Conflict):
    code = "rebuild_in_progress"

    def __init__(self, projection: str, job_id: str):
        super().__init__(
            f"a rebuild of the {projection} projection is already queued or running "
            f"(job {job_id}); wait until it ends"
        )
        self.job_id = job_id


class RebuildLocks:
    """The locks of the projections one job rebuilds, all held with the job id."""

    def __init__(self, client: Client, keyspace: Keyspace, projections: Sequence[str], token: str):
        self.client = client
        self.keys = [keyspace.rebuild_lock(p) for p in projections]
        self.projections = list(projections)
        self.token = token
        self._release = client.register_script(RELEASE_SCRIPT)
        self._renew = client.register_script(RENEW_SCRIPT)

    def acquire(self, ttl_ms: int, ended: Callable[[str], bool]) -> None:
        """Take every lock (or none): ``RebuildInProgress`` names a live holder."""
        taken: list[str] = []
        try:
            for projection, key in zip(self.projections, self.keys, strict=True):
                while not self.client.set(key, self.token, nx=True, px=ttl_ms):
                    holder = self.client.get(key)
                    if holder == self.token:
                        self._renew(keys=[key], args=[self.token, ttl_ms])
                        break
                    if holder is None:
                        continue  # expired meanwhile
                    if self._just_taken(key) or not ended(str(holder)):
                        raise RebuildInProgress(projection, str(holder))
                    self._release(keys=[key], args=[holder])
                taken.append(key)
        except BaseException:
            for key in taken:
                self._release(keys=[key], args=[self.token])
            raise

    def _just_taken(self, key: str) -> bool:
        """Taken by an enqueuer moments ago: its job may not exist yet, but it will."""
        return int(self.client.pttl(key)) > QUEUED_LOCK_MS - ENQUEUE_GRACE_MS

    def renew(self, ttl_ms: int) -> bool:
        return all(self._renew(keys=[key], args=[self.token, ttl_ms]) for key in self.keys)

    def release(self) -> None:
        for key in self.keys:
            self._release(keys=[key], args=[self.token])


def queue_connection(url: str, timeout: float = 5.0) -> redis.Redis:
    """A client for RQ (which needs bytes replies), with explicit timeouts."""
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


def job_has_ended(connection: redis.Redis, job_id: str) -> bool:
    try:
        return (
            Job.fetch(job_id, connection=connection, serializer=JSONSerializer).get_status()
            in ENDED
        )
    except NoSuchJobError:
        return True


def enqueue_rebuild(
    queue_client: redis.Redis,
    data_client: Client,
    keyspace: Keyspace,
    projections: Sequence[str],
    queue: str | None = None,
) -> Job:
    """Enqueue a rebuild of ``projections`` (on ``QUEUE`` unless told);
    ``RebuildInProgress`` if one is queued or running."""
    job_id = uuid.uuid4().hex
    locks = RebuildLocks(data_client, keyspace, projections, job_id)
    locks.acquire(QUEUED_LOCK_MS, lambda holder: job_has_ended(queue_client, holder))
    try:
        return Queue(queue or QUEUE, connection=queue_client, serializer=JSONSerializer).enqueue(
            "keyledger.workers.jobs.rebuild_projections",
            kwargs={
                "projections": list(projections),
                "namespace": keyspace.namespace,
                "partitions": keyspace.partitions,
            },
            job_id=job_id,
            job_timeout=JOB_TIMEOUT,
            ttl=QUEUED_TTL,
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            description=f"rebuild the {' and '.join(projections)} projection"
            + "s" * (len(projections) > 1),
            meta=Progress(phase="queued").as_meta(),
        )
    except BaseException:
        locks.release()
        raise


def describe(job: Job) -> dict[str, Any]:
    """What ``--json`` prints about a rebuild job: id, status and progress."""
    meta = job.get_meta(refresh=True)
    status = job.get_status(refresh=True)
    described: dict[str, Any] = {
        "jobId": job.id,
        "status": str(status.value if status is not None else "unknown"),
        "done": int(meta.get("done", 0)),
        "total": int(meta.get("total", 0)),
        "phase": meta.get("phase"),
        "projections": list(job.kwargs.get("projections", [])),
    }
    if status == JobStatus.FINISHED:
        described["result"] = job.return_value(refresh=True)
    elif status == JobStatus.FAILED:
        result = job.latest_result()
        lines = (result.exc_string or "").strip().splitlines() if result else []
        described["error"] = lines[-1] if lines else "the job failed"
    return described


class _Reporter:
    """Saves the job's progress (at most every ``REPORT_EVERY`` s) and renews its locks."""

    def __init__(self, job: Job | None, locks: RebuildLocks):
        self.job, self.locks = job, locks
        self._saved_at, self._phase = 0.0, ""

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.phase == self._phase and now - self._saved_at < REPORT_EVERY:
            return
        self._saved_at, self._phase = now, progress.phase
        if not self.locks.renew(RUNNING_LOCK_MS):
            raise RebuildError("this rebuild lost its lock to another one; stopping")
        if self.job is not None:
            self.job.meta.update(progress.as_meta())
            self.job.save_meta()  # type: ignore[no-untyped-call]


def rebuild_projections(projections: list[str], namespace: str, partitions: int) -> dict[str, Any]:
    """The RQ job: rebuild ``projections`` of the keyspace; returns the summary."""
    job = get_current_job()
    settings = Settings.from_env(namespace=namespace, partitions=partitions)
    client = connect(
        settings.redis_url,
        timeout=settings.redis_timeout,
        socket_timeout=DATA_SOCKET_TIMEOUT,
        cluster=settings.redis_cluster,
    )
    keyspace = keyspace_of(settings)
    check_partitions(client, keyspace)
    locks = RebuildLocks(client, keyspace, projections, job.id if job else uuid.uuid4().hex)
    locks.acquire(
        RUNNING_LOCK_MS,
        lambda holder: job is not None and job_has_ended(job.connection, holder),
    )
    try:
        return Rebuilder(client, keyspace, on_progress=_Reporter(job, locks)).run(projections)
    finally:
        locks.release()
