"""The key lifecycle for operators: stale keys, and the scheduler of expiry sweeps."""

from __future__ import annotations

import logging
import signal
import threading

import click

from keyledger.cli.common import account_option, container, emit, json_option, main, run
from keyledger.domain.errors import NotFound
from keyledger.keyinfo import KeyInfo


@main.group("keys")
def keys_group() -> None:
    """Secret keys across an account."""


@keys_group.command("stale")
@account_option
@click.option(
    "--days", type=click.IntRange(1, 36500), required=True, help="Unused for this many days."
)
@json_option
def keys_stale(account_id: str, days: int, as_json: bool) -> None:
    """List the keys unused for --days days (never used: since their creation), as
    GET /v1/api-keys?unusedForDays= does."""
    from keyledger.web.schemas import ApiKeySchema

    def action() -> None:
        built = container()
        state = built.ledger.state(account_id)
        if not state.exists:
            raise NotFound(f"account {account_id[:64]!r} not found")
        info, now = KeyInfo(built.keyspace, built.last_uses), built.ledger.clock()
        keys = sorted(state.keys.values(), key=lambda k: k.name)
        stale = info.bodies(state, info.unused(state, keys, now, days), now)
        shown = ApiKeySchema(many=True).dump(stale)
        lines = [
            f"{k['name']}  {k['status']}  last used {k['lastUsedTimestamp'] or 'never'}  "
            f"created {k['createdTimestamp']}"
            for k in shown
        ]
        human = "\n".join(lines) or f"no key unused for {days} days"
        emit(as_json, {"apiKeys": shown}, human)

    run(as_json, action)


@main.command()
@click.option("--queue", default="keyledger", show_default=True, help="The RQ queue.")
def scheduler(queue: str) -> None:
    """Enqueue an expiry sweep every KEYLEDGER_SWEEP_SECONDS (the `worker` runs it)."""
    from keyledger.workers.jobs import queue_connection
    from keyledger.workers.sweeps import Scheduler

    built = container()
    logging.basicConfig(
        level=built.settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    Scheduler(
        built.redis,
        queue_connection(built.settings.queue_redis_url),
        built.keyspace,
        built.settings.sweep_seconds,
        queue,
    ).run(stop)
