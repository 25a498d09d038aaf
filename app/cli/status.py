"""keyledger status: health of the log, the projections and the Redis settings;
keyledger deadletter: what the projector parked, and what to do about it."""

from __future__ import annotations

import json
import sys

import click

from keyledger.adapters import health
from keyledger.adapters.keyspace import PROJECTIONS
from keyledger.adapters.leakreports import reported_account_keys
from keyledger.adapters.redis_client import as_entries, translated_errors
from keyledger.cli.common import container, json_option, main


@main.command("status")
@json_option
def status_command(as_json: bool) -> None:
    """Show projector lag, halts, dead letters, Redis durability warnings and account
    keys reported leaked (rotate them: keyledger account-key rotate --grace 24h).

    Exits 1 when a partition is halted.
    """
    built = container()
    with translated_errors():
        report = health.status(built.topology, built.keyspace, built.settings.min_replicas)
        leaked = reported_account_keys(built.redis, built.keyspace)
    if as_json:
        click.echo(json.dumps({**report.as_dict(), "leakedAccountKeys": leaked}))
    else:
        for leak in leaked:
            click.echo(
                f"warning: the account key of account {leak['accountId']} was reported "
                f"leaked at {leak['url'] or '(no URL)'} on {leak['reportedTimestamp']}: "
                f"keyledger account-key rotate --account {leak['accountId']} --grace 24h",
                err=True,
            )
        click.echo(f"redis {report.redis_version}; {len(report.partitions)} partitions")
        for p in report.partitions:
            state = "HALTED" if p.halted else "ok"
            click.echo(
                f"  p{p.partition:02d} {state:6} log={p.log_length} lag={p.lag} "
                f"pending={p.pending} dead={p.dead_letters} node={p.node}"
            )
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
    if not report.healthy:
        sys.exit(1)


@main.group()
def deadletter() -> None:
    """Entries the projector could not apply."""


@deadletter.command("list")
@json_option
def deadletter_list(as_json: bool) -> None:
    """List parked entries with their errors."""
    built = container()
    keys = built.keyspace
    parked = []
    with translated_errors():
        for partition in range(keys.partitions):
            for entry_id, fields in as_entries(built.redis.xrange(keys.dead_letters(partition))):
                parked.append({"partition": partition, "parkedAt": entry_id, **fields})
    if as_json:
        click.echo(json.dumps({"deadLetters": parked}))
    else:
        for item in parked:
            click.echo(f"p{item['partition']:02d} entry {item['entry']}: {item['error']}")
        if not parked:
            click.echo("no dead letters")


@deadletter.command("retry")
@click.option("--partition", type=click.IntRange(0, 255), required=True)
def deadletter_retry(partition: int) -> None:
    """Clear the halt so the projectors try the entry again (after a fix or upgrade)."""
    built = container()
    with translated_errors():
        built.redis.delete(built.keyspace.halted(partition))
    click.echo(f"partition {partition}: halt cleared; projectors retry the entry now")


@deadletter.command("skip")
@click.option("--partition", type=click.IntRange(0, 255), required=True)
@click.option("--entry", "entry_id", required=True, help="The halted entry id, as a check.")
@click.option("--yes", is_flag=True, help="Confirm: the entry's change will never be applied.")
def deadletter_skip(partition: int, entry_id: str, yes: bool) -> None:
    """Move the projections past the halted entry. Its change is never applied:
    if it was a revocation, the revoked key keeps working. Use only when the entry
    is known to be junk."""
    built = container()
    keys = built.keyspace
    marker = keys.halted(partition)
    with translated_errors():
        halted_at = built.redis.hget(marker, "entry")
        if halted_at != entry_id:
            raise click.ClickException(f"partition {partition} is not halted at {entry_id}")
        if not yes:
            raise click.ClickException("refusing without --yes: read --help first")
        # One MULTI on the partition's node (a cluster client cannot run one over keys).
        pipe = built.topology.primary(keys.log(partition)).client.pipeline()
        for name in PROJECTIONS:
            pipe.set(keys.checkpoint(name, partition), entry_id)
        pipe.xack(keys.log(partition), keys.consumer_group(), entry_id)
        pipe.delete(marker)
        pipe.execute()
    click.echo(f"partition {partition}: skipped {entry_id}; projectors continue after it")
