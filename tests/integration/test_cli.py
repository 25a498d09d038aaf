"""The operator command line, each command printing one JSON object with --json."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from keyledger.bootstrap import Container
from keyledger.cli import main
from keyledger.domain.tokens import KeyKind, generate


@pytest.fixture
def cli(container: Container, projector, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REDIS_URL", container.settings.redis_url)
    monkeypatch.setenv("KEYLEDGER_NAMESPACE", container.settings.namespace)
    monkeypatch.setenv("KEYLEDGER_PARTITIONS", str(container.settings.partitions))
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, dict]:
        result = runner.invoke(main, [*args, "--json"])
        return result.exit_code, json.loads(result.stdout)

    return invoke


def test_bootstrap_an_account_from_the_command_line(cli, container: Container) -> None:
    code, created = cli(
        "account", "create", "--name", "Acme", "--owner-name", "Ann", "--owner-email", "a@x.io"
    )
    assert code == 0 and set(created) == {"accountId", "ownerUserId"}
    code, enabled = cli("api", "enable", "--account", created["accountId"])
    assert code == 0 and enabled["accountKey"].startswith("klak_")
    code, key = cli(
        "key",
        "create",
        "--account",
        created["accountId"],
        "--user",
        created["ownerUserId"],
        "--name",
        "bootstrap-key-1",
    )
    assert code == 0 and key["name"] == "bootstrap-key-1" and key["secretKey"].startswith("klsk_")
    result = container.authenticator.authenticate(
        method="GET",
        path="/v1/",
        source_ip="127.0.0.1",
        account_key=enabled["accountKey"],
        secret_key=key["secretKey"],
    )
    assert result.allowed


def test_rotate_replaces_the_account_key(cli) -> None:
    _, created = cli(
        "account", "create", "--name", "Acme", "--owner-name", "Ann", "--owner-email", "a@x.io"
    )
    _, first = cli("api", "enable", "--account", created["accountId"])
    code, rotated = cli("account-key", "rotate", "--account", created["accountId"])
    assert code == 0 and rotated["accountKey"] != first["accountKey"]


def test_errors_are_one_json_object_and_a_nonzero_exit(cli) -> None:
    code, body = cli("api", "enable", "--account", "no-such-account")
    assert code == 1
    assert body["error"]["status"] == 404
    code, body = cli(
        "account", "create", "--name", "Acme", "--owner-name", "Ann", "--owner-email", "nope"
    )
    assert code == 1 and body["error"]["fields"] == {"email": ["not a valid email address"]}


def test_disable_then_enable_keeps_the_account_key(cli) -> None:
    _, created = cli(
        "account", "create", "--name", "Acme", "--owner-name", "Ann", "--owner-email", "a@x.io"
    )
    cli("api", "enable", "--account", created["accountId"])
    code, _ = cli("api", "disable", "--account", created["accountId"])
    assert code == 0
    code, again = cli("api", "enable", "--account", created["accountId"])
    assert code == 0 and again["accountKey"] is None


def test_status_reports_lag_and_durability_settings(cli) -> None:
    cli("account", "create", "--name", "Acme", "--owner-name", "Ann", "--owner-email", "a@x.io")
    code, report = cli("status")
    assert code == 0 and report["healthy"] is True
    assert sum(p["logLength"] for p in report["partitions"]) == 2
    assert all(p["lag"] == 0 for p in report["partitions"])
    # The throwaway test Redis runs without persistence: status must say so.
    assert any("appendonly" in w for w in report["warnings"])


def test_a_halted_partition_is_reported_and_can_be_retried_or_skipped(
    cli, container: Container, redis_client
) -> None:
    _, created = cli(
        "account", "create", "--name", "Acme", "--owner-name", "Ann", "--owner-email", "a@x.io"
    )
    keys = container.keyspace
    partition = keys.partition_of(created["accountId"])
    entry_id = redis_client.xadd(keys.log(partition), {"type": "Nonsense"})
    deadline = time.monotonic() + 5
    while not redis_client.exists(keys.halted(partition)):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    code, report = cli("status")
    assert code == 1 and report["healthy"] is False
    assert report["partitions"][partition]["halted"]["entry"] == entry_id
    code, parked = cli("deadletter", "list")
    assert [d["entry"] for d in parked["deadLetters"]] == [entry_id]
    runner = CliRunner()
    refused = runner.invoke(
        main, ["deadletter", "skip", "--partition", str(partition), "--entry", entry_id]
    )
    assert refused.exit_code != 0
    done = runner.invoke(
        main, ["deadletter", "skip", "--partition", str(partition), "--entry", entry_id, "--yes"]
    )
    assert done.exit_code == 0, done.output
    code, report = cli("status")
    assert code == 0 and report["healthy"] is True


def test_an_error_does_not_echo_a_key_given_as_an_option(cli) -> None:
    """An operator who pastes a key where an id belongs gets an error that does not print
    it back (a terminal's output may be kept in a CI log); both output forms."""
    key = generate(KeyKind.SECRET, 0).token
    code, body = cli("api", "enable", "--account", key)
    assert code == 1 and body["error"]["status"] == 404
    assert key[21:64] not in json.dumps(body) and "[redacted-key]" in json.dumps(body)
    plain = CliRunner().invoke(main, ["api", "enable", "--account", key])
    assert plain.exit_code == 1 and key[21:64] not in plain.output
