"""Projection rebuilds through the RQ worker queue (issue 3)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from keyledger.adapters.keyspace import PROJECTIONS
from keyledger.adapters.redis_client import translated_errors
from keyledger.cli.common import container, emit, json_option, main, run
from keyledger.domain.errors import KeyledgerError, NotFound

if TYPE_CHECKING:
    from rq.job import Job

WHICH = {"auth": ("auth",), "log": ("syslog",), "all": PROJECTIONS}
POLL_EVERY = 0.25  # seconds
NO_WORKER_HINT_AFTER = 5.0  # seconds a job may sit in the queue before we say so


class RebuildFailed(KeyledgerError):
    code = "rebuild_failed"


@main.group()
def projections() -> None:
    """Projections: the authentication lookup (auth) and the system log (log)."""


@projections.command("rebuild")
@click.argument("which", type=click.Choice(list(WHICH)), default="all")
@click.option("--no-wait", is_flag=True, help="Print the job id and return at once.")
@click.option("--queue", default=None, help="The RQ queue (default: keyledger).")
@json_option
def rebuild(which: str, no_wait: bool, queue: str | None, as_json: bool) -> None:
    """Rebuild projections from the whole log on the worker queue.

    The job replays the log into a fresh generation, checks it, catches up with
    the live projector and switches to it atomically, partition by partition;
    authentication carries on meanwhile. Needs the Procfile's `worker` process.
    """
    from keyledger.workers.jobs import describe, enqueue_rebuild, queue_connection

    def action() -> None:
        built = container()
        with translated_errors():
            job = enqueue_rebuild(
                queue_connection(built.settings.queue_redis_url),
                built.redis,
                built.keyspace,
                WHICH[which],
                queue,
            )
            state = describe(job) if no_wait else _wait(job)
        _emit(as_json, state, f"queued as job {job.id}" if no_wait else None)

    run(as_json, action)


@projections.command("job")
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Wait until the job ends, showing its progress.")
@json_option
def job(job_id: str, wait: bool, as_json: bool) -> None:
    """Show a rebuild job's status and progress (the id `rebuild --no-wait` printed)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from keyledger.workers.jobs import describe, queue_connection

    def action() -> None:
        built = container()
        with translated_errors():
            connection = queue_connection(built.settings.queue_redis_url)
            try:
                found = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
            except NoSuchJobError:
                raise NotFound(f"no job {job_id!r} (results are kept for 7 days)") from None
            state = _wait(found) if wait else describe(found)
        _emit(as_json, state, None)

    run(as_json, action)


def _emit(as_json: bool, state: dict[str, Any], human: str | None) -> None:
    """Print a job's state: ``{"jobId", "status", "done", "total", ...}`` with ``--json``."""
    if state["status"] == "failed":
        raise RebuildFailed(f"rebuild job {state['jobId']} failed: {state.get('error')}")
    payload = {k: state[k] for k in ("jobId", "status", "done", "total")}
    payload["projections"] = state["projections"]
    if "result" in state:
        payload["result"] = state["result"]
    which = " and ".join(state["projections"])
    emit(as_json, payload, f"rebuild of {which} {human or _summary(state)}")


def _wait(job: Job) -> dict[str, Any]:
    """Poll the job until it ends, drawing its progress on stderr (stdout may carry JSON)."""
    from keyledger.workers.jobs import describe

    started, hinted = time.monotonic(), False
    with click.progressbar(length=1, label="rebuilding", file=sys.stderr, show_pos=True) as bar:
        while True:
            state = describe(job)
            bar.length = max(state["total"], 1)
            bar.update(state["done"] - bar.pos)
            if state["status"] in {"finished", "failed", "stopped", "canceled"}:
                return state
            waited = time.monotonic() - started
            if not hinted and state["status"] == "queued" and waited > NO_WORKER_HINT_AFTER:
                click.echo(f"\njob {job.id} is still queued: is a worker running?", err=True)
                hinted = True
            time.sleep(POLL_EVERY)


def _summary(state: dict[str, Any]) -> str:
    head = f"{state['status']} (job {state['jobId']}): "
    result = state.get("result") or {}
    if not result:
        return head + f"{state['done']} of {state['total']} log entries ({state['phase']})"
    rate = result.get("eventsPerSecond")
    return (
        head
        + f"{result['replayed']} log entries replayed in {result['seconds']} s"
        + (f" ({rate} events/s)" if rate else "")
        + f", {result['caughtUp']} caught up, keys: {result['keys']}"
    )
