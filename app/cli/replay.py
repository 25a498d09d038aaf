"""For auditors: replay the history and fold the state at a point in time (issue 3).

Both commands read the account's own event stream and nothing else: no projection is
consulted, so they show what the log says even when a projection is behind or wrong.
"""

from __future__ import annotations

import json
from typing import Any

import click

from keyledger import history
from keyledger.adapters.eventstore import EventStore
from keyledger.cli.common import (
    account_option,
    container,
    emit,
    json_option,
    lines_option,
    main,
    run,
)
from keyledger.domain.errors import NotFound

POSITION_METAVAR = "VERSION|ENTRY-ID|TIME"
POSITION_HELP = "a version (12), a stream entry id (1795846140133-0) or an ISO-8601 UTC time"


def position(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> history.Position | None:
    """Option callback: a point in the history (see ``app.history.parse_position``)."""
    if value is None:
        return None
    try:
        return history.parse_position(value)
    except history.BadPosition as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def require_account(store: EventStore, account_id: str) -> None:
    if store.version(account_id) == 0:
        raise NotFound(f"account {account_id[:64]!r} not found")


@main.group()
def events() -> None:
    """The account's event history, the source of truth."""


@events.command("replay")
@account_option
@click.option(
    "--from",
    "start",
    callback=position,
    metavar=POSITION_METAVAR,
    help=f"First event, inclusive: {POSITION_HELP}.",
)
@click.option(
    "--until",
    callback=position,
    metavar=POSITION_METAVAR,
    help=f"Last event, inclusive: {POSITION_HELP}.",
)
@lines_option
def events_replay(
    account_id: str,
    start: history.Position | None,
    until: history.Position | None,
    output: str,
) -> None:
    """Print the account's events in order, as GET /v1/events lists them."""
    try:
        history.check_range(start, until)
    except history.BadPosition as exc:
        raise click.BadParameter(str(exc), param_hint="'--from' / '--until'") from None

    def action() -> None:
        store = container().store
        require_account(store, account_id)
        if output == "csv":
            click.echo(history.csv_row(history.COLUMNS), nl=False)
        for stored in history.replay(store, account_id, start, until):
            item = history.history_item(stored)
            if output == "csv":
                click.echo(history.csv_row(item.csv_cells()), nl=False)
            else:
                click.echo(json.dumps(item.to_json(), ensure_ascii=False))

    run(False, action)


@main.command("state")
@account_option
@click.option(
    "--at",
    callback=position,
    metavar=POSITION_METAVAR,
    help=f"Point in time, inclusive: {POSITION_HELP} (default: now).",
)
@json_option
def state(account_id: str, at: history.Position | None, as_json: bool) -> None:
    """Print the account as it was at a point in its history, folded from the events."""

    def action() -> None:
        store = container().store
        require_account(store, account_id)
        body = history.state_body(history.state_at(store, account_id, at))
        emit(as_json, body, describe(body))

    run(as_json, action)


def describe(body: dict[str, Any]) -> str:
    """The folded state for a reader."""
    lines = [
        f"account {body['accountId']} {body['name']!r} at version {body['version']} "
        f"(event {body['eventId']}, {body['time']})",
        f"API {'enabled' if body['apiEnabled'] else 'disabled'}; "
        f"account key {'issued' if body['hasAccountKey'] else 'none'}",
        f"users ({len(body['users'])}):",
    ]
    lines += [f"  {u['id']}  {u['name']} <{u['email']}>  {u['role']}" for u in body["users"]]
    lines.append(f"API keys ({len(body['apiKeys'])}):")
    lines += [
        f"  {k['name']}  user {k['userId']}  created {k['createdTimestamp']}  "
        f"sources: {', '.join(k['allowedSourceIps']) or 'any'}"
        + ("" if k["enabled"] else "  DISABLED")
        + (f"  expires {k['expiresTimestamp']}" if k["expiresTimestamp"] else "")
        for k in body["apiKeys"]
    ]
    return "\n".join(lines)
