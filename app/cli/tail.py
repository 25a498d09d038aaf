"""keyledger events tail: the live audit feed, for shipping to a SIEM (``keyledger.feed``).

Prints every event of every partition (or one account's) in one stable order,
one line each with a cursor; ``--from`` a printed cursor resumes after it with
no gap and no repeat; ``--follow`` keeps printing as events are appended.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import Any

import click

from keyledger import feed, history
from keyledger.adapters.eventstore import StoredEvent
from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.logtail import LogTail
from keyledger.adapters.redis_client import connect
from keyledger.cli.common import container, lines_option, run
from keyledger.cli.replay import events
from keyledger.domain.errors import StoreUnavailable
from keyledger.domain.mapper import canonical_json

BATCH = 500
#: A blocking read waits this long for new entries; its socket timeout is longer.
BLOCK_MS = 1000
COLUMNS = ("cursor", "partition", "entryId", "accountId", *history.COLUMNS[1:])


def start_positions(text: str, keys: Keyspace, reader: LogTail) -> list[feed.StreamId]:
    """Where to start: ``start``, ``now``, an entry id (that entry on) or a cursor."""
    if text == "start":
        return [feed.ORIGIN] * keys.partitions
    if text == "now":
        last = reader.last_ids(list(range(keys.partitions)))
        return [last[p] for p in range(keys.partitions)]
    entry = history.parse_entry_id(text)
    if entry is not None:
        before = history.parse_entry_id(history.entry_before(entry)) or feed.ORIGIN
        return [before] * keys.partitions
    try:
        return feed.decode(text, keys.partitions)
    except feed.BadCursor as exc:
        raise click.BadParameter(
            f"{exc}; expected start, now, an entry id (1795846140133-0) or a printed cursor",
            param_hint="'--from'",
        ) from None


def line(entry: feed.Entry, cursor: str) -> dict[str, Any]:
    item = history.history_item(StoredEvent(entry.entry_id, entry.fields)).to_json()
    item.pop("id")
    return {
        "cursor": cursor,
        "partition": entry.partition,
        "entryId": entry.entry_id,
        "accountId": entry.fields.get("account"),
        **item,
    }


def csv_cells(item: dict[str, Any]) -> list[object]:
    return [canonical_json(item[c]) if isinstance(item[c], dict) else item[c] for c in COLUMNS]


@events.command("tail")
@click.option("--account", "account_id", default=None, help="Only this account's events.")
@click.option(
    "--from",
    "start",
    default=None,
    metavar="start|now|ENTRY-ID|CURSOR",
    help="Where to begin: the first event, after the last one, at a log entry id, or "
    "after a printed cursor. Default: now with --follow, else start.",
)
@click.option("--follow", is_flag=True, help="Keep printing events as they are appended.")
@lines_option
def events_tail(account_id: str | None, start: str | None, follow: bool, output: str) -> None:
    """Print every event of every account, in one order, each line with a cursor."""

    def action() -> None:
        built = container()
        keys = built.keyspace
        client = connect(
            built.settings.redis_url,
            timeout=built.settings.redis_timeout,
            socket_timeout=BLOCK_MS / 1000 + 5,
            cluster=built.settings.redis_cluster,
        )
        reader = LogTail(client, keys)
        positions = start_positions(start or ("now" if follow else "start"), keys, reader)
        partitions = [keys.partition_of(account_id)] if account_id else range(keys.partitions)
        merge = feed.Merge(positions, frozenset(partitions))
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        if output == "csv":
            click.echo(history.csv_row(COLUMNS), nl=False)
        end = None if follow else reader.server_ms()  # a snapshot stops where it began
        while not stop.is_set():
            try:
                now, found = reader.read(
                    {p: merge.read_to[p] for p in merge.needs_reading()}, BATCH
                )
            except StoreUnavailable as exc:
                if not follow:
                    raise
                click.echo(f"warning: {exc.description}; retrying in 1 s", err=True)
                stop.wait(1.0)
                continue
            for partition, entries in found.items():
                merge.add(partition, entries, now if len(entries) < BATCH else None)
            watermark = now if end is None else min(now, end)
            for entry in merge.ready(watermark):
                if account_id and entry.fields.get("account") != account_id:
                    continue
                item = line(entry, merge.cursor())
                if output == "csv":
                    click.echo(history.csv_row(csv_cells(item)), nl=False)
                else:
                    click.echo(json.dumps(item, ensure_ascii=False))
            if not merge.caught_up(watermark):
                continue
            if end is not None:
                return
            if merge.waiting:
                time.sleep(0.002)  # newer than the server's clock: printable within a ms
                continue
            try:
                reader.wait({p: merge.read_to[p] for p in merge.read}, BLOCK_MS)
            except StoreUnavailable as exc:
                click.echo(f"warning: {exc.description}; retrying in 1 s", err=True)
                stop.wait(1.0)

    try:
        run(False, action)
    except BrokenPipeError:  # the reader went away (e.g. `| head`): not an error
        sys.stderr.close()
