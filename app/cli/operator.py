"""Operator actions: what "contact support" does in the Redis Cloud model."""

from __future__ import annotations

from datetime import datetime

import click

from keyledger.cli.common import account_option, container, emit, json_option, main, run
from keyledger.domain import commands as cmd
from keyledger.domain.errors import InvalidInput
from keyledger.domain.events import OPERATOR
from keyledger.domain.lifecycle import check_grace, parse_duration
from keyledger.domain.mapper import format_time


def grace_seconds(text: str | None) -> int:
    """``--grace``: ``90s``, ``15m``, ``24h`` or ``7d`` (at most 7 days) as seconds."""
    if text is None:
        return 0
    try:
        return check_grace(parse_duration(text), "grace")
    except ValueError as exc:
        raise InvalidInput("invalid grace period", fields={"grace": [str(exc)]}) from None


def moment(text: str | None) -> datetime | None:
    """``--expires``: an ISO 8601 time with its zone (e.g. 2026-12-01T10:00:00Z)."""
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidInput(
            "invalid expiry",
            fields={
                "expiresTimestamp": ["an ISO 8601 time with its zone, e.g. 2026-12-01T10:00:00Z"]
            },
        )
    return parsed


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
        account_id, owner_id, outcome = container().ledger.register_account(
            name, owner_name, owner_email, OPERATOR
        )
        emit(
            as_json,
            {"accountId": account_id, "ownerUserId": owner_id},
            f"account {account_id} created; owner user {owner_id}",
            outcome,
        )

    run(as_json, action)


@main.group()
def api() -> None:
    """The account's API switch (disabled by default)."""


@api.command("enable")
@account_option
@json_option
def api_enable(account_id: str, as_json: bool) -> None:
    """Enable the API; the first time, print the account key (shown only once)."""

    def action() -> None:
        token, outcome = container().ledger.enable_api(account_id, OPERATOR)
        human = (
            f"API enabled. Account key (shown only once, keep it safe):\n{token}"
            if token
            else "API enabled again; the existing account key works again"
        )
        emit(as_json, {"accountKey": token}, human, outcome)

    run(as_json, action)


@api.command("disable")
@account_option
@json_option
def api_disable(account_id: str, as_json: bool) -> None:
    """Disable the API: every request for the account then fails."""

    def action() -> None:
        outcome = container().ledger.disable_api(account_id, OPERATOR)
        emit(as_json, {"accountId": account_id, "apiEnabled": False}, "API disabled", outcome)

    run(as_json, action)


@main.group("account-key")
def account_key() -> None:
    """The account key."""


@account_key.command("rotate")
@account_option
@click.option(
    "--grace",
    metavar="DURATION",
    help="Keep the old key working this long beside the new one: 90s, 15m, 24h, 7d "
    "(default: it stops at once).",
)
@json_option
def account_key_rotate(account_id: str, grace: str | None, as_json: bool) -> None:
    """Issue a new account key; the old one stops at once, or after --grace."""

    def action() -> None:
        seconds = grace_seconds(grace)
        token, outcome = container().ledger.rotate_account_key(account_id, OPERATOR, seconds)
        ends = outcome.state.previous_account_key_expires if seconds else None
        until = format_time(ends) if ends is not None else None
        human = (
            f"New account key (shown only once); the old one works until {until}:\n{token}"
            if until
            else f"New account key (shown only once; the old one no longer works):\n{token}"
        )
        emit(as_json, {"accountKey": token, "previousKeyExpiresTimestamp": until}, human, outcome)

    run(as_json, action)


@main.group()
def key() -> None:
    """Secret keys."""


@key.command("create")
@account_option
@click.option("--user", "user_id", required=True, help="Id of the user who will hold the key.")
@click.option("--name", required=True, help="Key name: 10-50 of letters, digits, '-', '_'.")
@click.option("--cidr", "cidrs", multiple=True, help="Allowed source subnet (repeatable).")
@click.option("--description", default="", help="At most 200 printable characters.")
@click.option("--expires", metavar="TIME", help="When it stops: ISO 8601 with its zone.")
@json_option
def key_create(
    account_id: str,
    user_id: str,
    name: str,
    cidrs: tuple[str, ...],
    description: str,
    expires: str | None,
    as_json: bool,
) -> None:
    """Create a secret key (to bootstrap the first one); prints it once."""

    def action() -> None:
        token, outcome = container().ledger.create_secret_key(
            account_id,
            name,
            user_id,
            cidrs,
            OPERATOR,
            description=description,
            expires=moment(expires),
        )
        human = f"Secret key {name!r} (shown only once, keep it safe):\n{token}"
        emit(as_json, {"name": name, "secretKey": token}, human, outcome)

    run(as_json, action)


key_name_option = click.option("--name", required=True, help="The key's name.")


@key.command("disable")
@account_option
@key_name_option
@json_option
def key_disable(account_id: str, name: str, as_json: bool) -> None:
    """Disable one secret key: every request with it gets 401 until it is enabled again.

    Recorded with the operator as its actor; never refused by the account's budgets."""

    def action() -> None:
        outcome = container().ledger.update_secret_key(
            cmd.UpdateSecretKey(account_id=account_id, name=name, enabled=False), OPERATOR
        )
        payload = {"accountId": account_id, "name": name, "enabled": False}
        emit(as_json, payload, f"secret key {name!r} disabled", outcome)

    run(as_json, action)


@key.command("delete")
@account_option
@key_name_option
@json_option
def key_delete(account_id: str, name: str, as_json: bool) -> None:
    """Delete one secret key for good: every request with it gets 401.

    Recorded with the operator as its actor; never refused by the account's budgets."""

    def action() -> None:
        outcome = container().ledger.delete_secret_key(account_id, name, OPERATOR)
        payload = {"accountId": account_id, "name": name, "deleted": True}
        emit(as_json, payload, f"secret key {name!r} deleted", outcome)

    run(as_json, action)
