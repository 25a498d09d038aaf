"""What every ``keyledger`` command shares: the root group, options, output and errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from keyledger.bootstrap import Container, build, verify_partitions
from keyledger.config import ConfigError, Settings
from keyledger.domain.errors import KeyledgerError, error_body
from keyledger.service import NOT_IN_EFFECT, Outcome


def container() -> Container:
    try:
        built = build(Settings.from_env())
        verify_partitions(built)
        return built
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def emit(
    as_json: bool, payload: dict[str, Any], human: str, outcome: Outcome | None = None
) -> None:
    """Print the result: one JSON object with ``--json``, else a sentence."""
    if outcome is not None and not outcome.in_effect:
        payload = {**payload, "inEffect": False, "notice": NOT_IN_EFFECT}
        click.echo(f"warning: {NOT_IN_EFFECT}", err=True)
    if as_json:
        click.echo(json.dumps(payload))
    else:
        click.echo(human)


def run(as_json: bool, action: Callable[[], None]) -> None:
    """Run ``action``; a ``KeyledgerError`` becomes a message (or JSON error) and exit 1."""
    try:
        action()
    except KeyledgerError as exc:
        body = error_body(exc.status, exc.code, exc.description, exc.fields)
        if as_json:
            click.echo(json.dumps({"error": body}))
            sys.exit(1)
        raise click.ClickException(body["description"]) from None


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
lines_option = click.option(
    "--format",
    "output",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="One JSON object per line, or CSV with a header row.",
)
account_option = click.option("--account", "account_id", required=True, help="Account id.")


@click.group()
def main() -> None:
    """keyledger: API-key authentication with an event-sourced audit trail."""
