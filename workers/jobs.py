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
from rq import Queue, Worker, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import connect
from keyledger.adapters.topology import Client
from keyledger.bootstrap import check_partitions, keyspace_of
from keyledger.config import Settings
from keyledger.domain.errors import Conflict
from keyledger.workers.rebuild import Progress, Rebuilder, RebuildError, Totals, summary
from keyledger.workers.rebuild_run import RebuildRun

QUEUE = "keyledger"
JOB_TIMEOUT = 3600  # seconds a rebuild may run before RQ stops it
QUEUED_TTL = 24 * 3600  # a job no worker started within a day is dropped
RESULT_TTL = FAILURE_TTL = 7 * 24 * 3600
QUEUED_LOCK_MS = (QUEUED_TTL + JOB_TIMEOUT) * 1000
RUNNING_LOCK_MS = 5 * 60 * 1000  # renewed at every progress report
ENQUEUE_GRACE_MS = 30_000  # a lock this fresh is never stale, even before its job exists
REPORT_EVERY = 0.5  # seconds between saves of the job's progress
WAIT_EVERY = 0.2  # seconds between looks at the helpers still working, once none is left
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
    """Every ``REPORT_EVERY`` s: renews the locks, sends the participant's heartbeat and
    entries read to the run, and (the lead) saves the run's progress in the job's meta."""

    def __init__(self, job: Job | None, locks: RebuildLocks, run: RebuildRun, me: str):
        self.job, self.locks, self.run, self.me = job, locks, run, me
        self._saved_at, self._phase, self._sent = 0.0, "", 0

    def __call__(self, progress: Progress, force: bool = False) -> None:
        now = time.monotonic()
        if not force and progress.phase == self._phase and now - self._saved_at < REPORT_EVERY:
            return
        self._saved_at, self._phase = now, progress.phase
        if not self.locks.renew(RUNNING_LOCK_MS):
            raise RebuildError("this rebuild lost its lock to another one; stopping")
        self.run.beat(self.me, progress.done - self._sent)
        self._sent = progress.done
        if self.job is not None:
            state = self.run.snapshot()
            shared = progress.as_meta()
            shared["done"] = int(state.get("done", 0))
            shared["total"] = max(int(state.get("total", 0)), shared["done"])
            self.job.meta.update(shared)
            self.job.save_meta()  # type: ignore[no-untyped-call]


def _data_client(settings: Settings) -> Client:
    return connect(
        settings.redis_url,
        timeout=settings.redis_timeout,
        socket_timeout=DATA_SOCKET_TIMEOUT,
        cluster=settings.redis_cluster,
    )


def _enqueue_helpers(
    job: Job | None, projections: list[str], namespace: str, partitions: int, width: int | None
) -> list[str]:
    """One helper job per other worker serving the lead's queue (or ``width`` - 1)."""
    if job is None:
        return []
    queue = Queue(job.origin, connection=job.connection, serializer=JSONSerializer)
    if width is None:
        width = len(Worker.all(queue=queue))
    helpers = []
    for _ in range(max(0, min(width, partitions) - 1)):
        helper = queue.enqueue(
            "keyledger.workers.jobs.rebuild_helper",
            kwargs={
                "projections": projections,
                "namespace": namespace,
                "partitions": partitions,
                "lead": job.id,
            },
            job_timeout=JOB_TIMEOUT,
            ttl=QUEUED_TTL,
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            description=f"help rebuild job {job.id}",
            at_front=True,
        )
        helpers.append(helper.id)
    return helpers


def rebuild_projections(
    projections: list[str], namespace: str, partitions: int, width: int | None = None
) -> dict[str, Any]:
    """The RQ job: rebuild ``projections`` of the keyspace; returns the summary.

    The job leads: it enqueues helpers for the other workers of its queue (``width``:
    how many processes in all; default every worker serving the queue), then rebuilds
    partitions beside them (``workers.rebuild_run``)."""
    job = get_current_job()
    settings = Settings.from_env(namespace=namespace, partitions=partitions)
    client = _data_client(settings)
    keyspace = keyspace_of(settings)
    check_partitions(client, keyspace)
    token = job.id if job else uuid.uuid4().hex
    locks = RebuildLocks(client, keyspace, projections, token)
    locks.acquire(
        RUNNING_LOCK_MS,
        lambda holder: job is not None and job_has_ended(job.connection, holder),
    )
    run = RebuildRun(client, keyspace, token)
    reporter = _Reporter(job, locks, run, "lead")
    rebuilder = Rebuilder(client, keyspace)
    started = time.monotonic()
    try:
        wanted = rebuilder.begin(projections)
        run.open(partitions, rebuilder.progress.total)
        rebuilder.on_progress = reporter
        _enqueue_helpers(job, wanted, namespace, partitions, width)
        failure: BaseException | None = None
        try:
            rebuilder.take_part(wanted, run.claim)
        except BaseException as exc:  # the helpers stop at their next claim
            run.fail(str(exc) or type(exc).__name__)
            failure = exc
        joined = run.close()
        while run.running(joined):
            reporter(rebuilder.progress, force=True)
            time.sleep(WAIT_EVERY)
        run.add(rebuilder.totals.as_counts())
        state = run.snapshot()
        if failure is not None or "error" in state or _done(state) < partitions:
            rebuilder._drop_shadows(wanted)
            if failure is not None:
                raise failure
            raise RebuildError(
                state.get("error")
                or f"only {_done(state)} of {partitions} partitions were rebuilt: a helper "
                "stopped (its worker was killed?); the others are switched, the rest keep "
                "their live projection; run the rebuild again"
            )
        totals = _totals(state, wanted, workers=1 + len(joined))
        rebuilder.progress.done = totals.replayed
        rebuilder.progress.total = totals.replayed
        rebuilder.progress.phase, rebuilder.progress.partition = "done", None
        if job is not None:
            job.meta.update(rebuilder.progress.as_meta())
            job.save_meta()  # type: ignore[no-untyped-call]
        return summary(wanted, partitions, totals, time.monotonic() - started)
    finally:
        run.drop()
        locks.release()


def rebuild_helper(
    projections: list[str], namespace: str, partitions: int, lead: str
) -> dict[str, Any]:
    """The RQ job that helps the rebuild job ``lead``: rebuilds the partitions it takes."""
    job = get_current_job()
    me = job.id if job else uuid.uuid4().hex
    settings = Settings.from_env(namespace=namespace, partitions=partitions)
    client = _data_client(settings)
    keyspace = keyspace_of(settings)
    run = RebuildRun(client, keyspace, lead)
    if not run.join(me):
        return {"lead": lead, "joined": False}
    try:
        locks = RebuildLocks(client, keyspace, projections, lead)
        reporter = _Reporter(None, locks, run, me)
        rebuilder = Rebuilder(client, keyspace, on_progress=reporter)
        wanted = rebuilder.wanted(projections)
        rebuilder.take_part(wanted, run.claim)
        reporter(rebuilder.progress, force=True)  # the last entries read
        run.add(rebuilder.totals.as_counts())
        return {"lead": lead, "joined": True, **rebuilder.totals.as_counts()}
    except BaseException as exc:
        run.fail(str(exc) or type(exc).__name__)
        raise
    finally:
        run.leave(me)


def _done(state: dict[str, str]) -> int:
    return int(state.get("partitionsDone", 0))


def _totals(state: dict[str, str], wanted: list[str], workers: int) -> Totals:
    def number(name: str) -> int:
        return int(state.get(name, 0))

    return Totals(
        replayed=number("replayed"),
        caught_up=number("caughtUp"),
        replay_seconds=number("replayMs") / 1000,
        skipped=number("skipped"),
        switch_retries=number("switchRetries"),
        keys={name: number(f"keys:{name}") for name in wanted},
        partitions=_done(state),
        workers=workers,
    )
