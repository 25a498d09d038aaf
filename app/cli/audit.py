"""Tamper evidence: verify the hash chains of the log, print a chain head to keep."""

from __future__ import annotations

import sys

import click

from keyledger.adapters.audit import ChainAuditor
from keyledger.cli.common import account_option, container, emit, json_option, main, run
from keyledger.domain.chain import Head


@main.group()
def audit() -> None:
    """The hash chains that make the log tamper-evident."""


@audit.command("verify")
@click.option("--account", "account_id", default=None, help="Verify this account only.")
@click.option(
    "--expect",
    metavar="VERSION:HASH",
    default=None,
    help="A head kept outside Redis (from `audit head`) that the chain must still hold.",
)
@json_option
def audit_verify(account_id: str | None, expect: str | None, as_json: bool) -> None:
    """Recompute the chains; exit 1 naming the first broken link."""
    if expect is not None and account_id is None:
        raise click.UsageError("--expect needs --account")

    def action() -> None:
        expected = Head.parse(expect) if expect is not None else None
        report = ChainAuditor(container().store).verify(account_id, expected)
        counts = f"{report.accounts} accounts, {report.events} events"
        if report.first is None:
            emit(as_json, report.as_dict(), f"ok: {counts}, every chain intact")
            return
        broken = len({b.account for b in report.breaks})
        emit(
            as_json,
            report.as_dict(),
            f"BROKEN: {report.first.describe()}\n"
            f"({broken} account(s) with a broken chain; checked {counts})",
        )
        sys.exit(1)

    run(as_json, action)


@audit.command("head")
@account_option
@json_option
def audit_head(account_id: str, as_json: bool) -> None:
    """Print the account's chain head, to keep outside Redis and compare later."""

    def action() -> None:
        head = ChainAuditor(container().store).head(account_id)
        emit(
            as_json,
            {"accountId": account_id, "version": head.version, "hash": head.hash},
            f"{head.version}:{head.hash}\n"
            f"(later: keyledger audit verify --account {account_id} "
            f"--expect {head.version}:{head.hash})",
        )

    run(as_json, action)
