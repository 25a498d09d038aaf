"""The ``keyledger`` command line: operator actions ("contact support"), and the processes.

Every command reads ``REDIS_URL`` (or the embedded Redis of ``make run``) and,
with ``--json``, prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from app.adapters.embedded import EmbeddedRedis, port_is_free
from app.bootstrap import Container, build, check_partitions, verify_partitions
from app.config import REDIS_URL_FILE, ConfigError, Settings
from app.domain.errors import KeyledgerError
from app.domain.events import OPERATOR
from app.service import Outcome
from app.web.blueprint import NOT_IN_EFFECT

DEFAULT_EMBEDDED_PORT = 6380


def _container() -> Container:
    try:
        container = build(Settings.from_env())
        verify_partitions(container)
        return container
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _emit(as_json: bool, payload: dict[str, Any], human: str, outcome: Outcome | None) -> None:
    if outcome is not None and not outcome.in_effect:
        payload = {**payload, "inEffect": False, "notice": NOT_IN_EFFECT}
        click.echo(f"warning: {NOT_IN_EFFECT}", err=True)
    if as_json:
        click.echo(json.dumps(payload))
    else:
        click.echo(human)


def _run(as_json: bool, action: Callable[[], None]) -> None:
    try:
        action()
    except KeyledgerError as exc:
        if as_json:
            body: dict[str, Any] = {
                "status": exc.status,
                "code": exc.code,
                "description": exc.description,
            }
            if exc.fields:
                body["fields"] = exc.fields
            click.echo(json.dumps({"error": body}))
            sys.exit(1)
        raise click.ClickException(exc.description) from None


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
account_option = click.option("--account", "account_id", required=True, help="Account id.")


@click.group()
def main() -> None:
    """keyledger: API-key authentication with an event-sourced audit trail."""


# -- operator actions ---------------------------------------------------------------------
@main.group()
def account() -> None:
    """Accounts."""


@account.command("create")
@click.option("--name", required=True, help="Account name.")
@click.option("--owner-name", required=True, help="Name of the first user (an Owner).")
@click.option("--owner-email", required=True, help="Email of the first user.")
@json_option
def account_create(name: str, owner_name: str, owner_email: str, as_json: bool) -> None:
    """Register an account and its first Owner."""

    def action() -> None:
        account_id, owner_id, outcome = _container().ledger.register_account(
            name, owner_name, owner_email, OPERATOR
        )
        _emit(
            as_json,
            {"accountId": account_id, "ownerUserId": owner_id},
            f"account {account_id} created; owner user {owner_id}",
            outcome,
        )

    _run(as_json, action)


@main.group()
def api() -> None:
    """The account's API switch (disabled by default)."""


@api.command("enable")
@account_option
@json_option
def api_enable(account_id: str, as_json: bool) -> None:
    """Enable the API; the first time, print the account key (shown only once)."""

    def action() -> None:
        token, outcome = _container().ledger.enable_api(account_id, OPERATOR)
        human = (
            f"API enabled. Account key (shown only once, keep it safe):\n{token}"
            if token
            else "API enabled again; the existing account key works again"
        )
        _emit(as_json, {"accountKey": token}, human, outcome)

    _run(as_json, action)


@api.command("disable")
@account_option
@json_option
def api_disable(account_id: str, as_json: bool) -> None:
    """Disable the API: every request for the account then fails."""

    def action() -> None:
        outcome = _container().ledger.disable_api(account_id, OPERATOR)
        _emit(as_json, {"accountId": account_id, "apiEnabled": False}, "API disabled", outcome)

    _run(as_json, action)


@main.group("account-key")
def account_key() -> None:
    """The account key."""


@account_key.command("rotate")
@account_option
@json_option
def account_key_rotate(account_id: str, as_json: bool) -> None:
    """Issue a new account key; the old one stops working at once."""

    def action() -> None:
        token, outcome = _container().ledger.rotate_account_key(account_id, OPERATOR)
        human = f"New account key (shown only once; the old one no longer works):\n{token}"
        _emit(as_json, {"accountKey": token}, human, outcome)

    _run(as_json, action)


@main.group()
def key() -> None:
    """Secret keys."""


@key.command("create")
@account_option
@click.option("--user", "user_id", required=True, help="Id of the user who will hold the key.")
@click.option("--name", required=True, help="Key name: 10-50 of letters, digits, '-', '_'.")
@click.option("--cidr", "cidrs", multiple=True, help="Allowed source subnet (repeatable).")
@json_option
def key_create(
    account_id: str, user_id: str, name: str, cidrs: tuple[str, ...], as_json: bool
) -> None:
    """Create a secret key (to bootstrap the first one); prints it once."""

    def action() -> None:
        token, outcome = _container().ledger.create_secret_key(
            account_id, name, user_id, cidrs, OPERATOR
        )
        human = f"Secret key {name!r} (shown only once, keep it safe):\n{token}"
        _emit(as_json, {"name": name, "secretKey": token}, human, outcome)

    _run(as_json, action)


# -- processes ----------------------------------------------------------------------------
@main.command()
@click.option("--consumer", default=None, help="Consumer name (default: the host name).")
def projector(consumer: str | None) -> None:
    """Run the projector: the log -> authentication lookup and system log."""
    from workers.projector import Projector

    container = _container()
    logging.basicConfig(
        level=container.settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    check_partitions(container.redis, container.keyspace)
    from app.adapters.redis_client import connect

    client = connect(container.settings.redis_url, timeout=5.0, socket_timeout=10.0)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    Projector(client, container.keyspace, consumer=consumer, block_ms=2000).run(stop)


@main.command()
@click.option("--procfile", default="Procfile", show_default=True)
def run(procfile: str) -> None:
    """Run every Procfile process (honcho); start an embedded Redis if REDIS_URL is unset."""
    from honcho.command import main as honcho_main

    embedded: EmbeddedRedis | None = None
    if not os.environ.get("REDIS_URL"):
        port = DEFAULT_EMBEDDED_PORT if port_is_free(DEFAULT_EMBEDDED_PORT) else None
        embedded = EmbeddedRedis(Path("var") / "redis", port=port, persistent=True)
        url = embedded.start()
        REDIS_URL_FILE.parent.mkdir(parents=True, exist_ok=True)
        REDIS_URL_FILE.write_text(url + "\n")
        os.environ["REDIS_URL"] = url
        click.echo(
            f"embedded Redis listening on {url} (data in {embedded.data_dir}); "
            f"the keyledger CLI in this directory finds it via {REDIS_URL_FILE}",
            err=True,
        )
    os.environ.setdefault("PORT", "8080")
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    try:
        honcho_main(["start", "-f", procfile])
    finally:
        if embedded is not None:
            embedded.stop()
            REDIS_URL_FILE.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
