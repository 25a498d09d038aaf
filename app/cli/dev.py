"""``keyledger dev``: tools for development, benchmarks and capacity planning."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO

import click

from keyledger.cli.common import emit, json_option, main, run
from keyledger.config import ConfigError, Settings
from keyledger.domain.errors import Conflict


class NamespaceInUse(Conflict):
    code = "namespace_not_empty"


@main.group()
def dev() -> None:
    """Development tools: seed a namespace with a realistic history."""


@dev.command("seed")
@click.option("--accounts", type=click.IntRange(min=1), required=True, help="Accounts to make.")
@click.option(
    "--keys-per-account",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Secret keys each account keeps.",
)
@click.option(
    "--events",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Events to write in all (at least what the accounts and keys take).",
)
@click.option("--namespace", default=None, help="Key namespace (default: KEYLEDGER_NAMESPACE).")
@click.option("--force", is_flag=True, help="Add to a namespace that already holds data.")
@click.option(
    "--secrets-out",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write every generated key here, one JSON object per line (mode 0600).",
)
@click.option("--no-project", is_flag=True, help="Leave the projection to a running projector.")
@json_option
def seed(
    accounts: int,
    keys_per_account: int,
    events: int,
    namespace: str | None,
    force: bool,
    secrets_out: str | None,
    no_project: bool,
    as_json: bool,
) -> None:
    """Write a realistic history through the event store (docs/seed.md)."""
    from keyledger.bootstrap import build
    from keyledger.seed import NamespaceNotEmpty, Plan, Seeder

    try:
        settings = Settings.from_env()
        if namespace:
            settings = Settings.from_env(namespace=namespace)
        container = build(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None

    def action() -> None:
        plan = Plan(accounts, keys_per_account, events)
        with _secrets_file(secrets_out) as out:
            seeder = Seeder(container, out, on_progress=_progress())
            try:
                summary = seeder.run(plan, force=force, project=not no_project)
            except NamespaceNotEmpty as exc:
                raise NamespaceInUse(str(exc)) from None
        click.echo("", err=True)
        body = summary.as_json()
        emit(
            as_json,
            body,
            f"seeded {body['namespace']}: {body['accounts']} accounts, {body['users']} users, "
            f"{body['secretKeys']} secret keys ({body['secretKeysDeleted']} more deleted), "
            f"{body['events']} events in {body['partitions']} partitions, "
            f"{body['projected']} projected; {body['secretsWritten']} keys written to "
            f"{secrets_out or 'nowhere'} ({body['seconds']} s)",
        )

    run(as_json, action)


@contextlib.contextmanager
def _secrets_file(path: str | None) -> Iterator[IO[str] | None]:
    if path is None:
        yield None
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    out: IO[str] = os.fdopen(descriptor, "w", encoding="utf-8")
    with out:
        yield out


def _progress() -> Callable[[str, int, int], None]:
    shown = [0]

    def show(phase: str, done: int, total: int) -> None:
        if sys.stderr.isatty() and (done - shown[0] >= 10_000 or done == total):
            shown[0] = done
            click.echo(f"\r{phase}: {done:,}/{total:,} events", err=True, nl=False)

    return show
