"""``keyledger dev seed``: a realistic history through the real event store."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from keyledger.bootstrap import Container
from keyledger.cli import main
from keyledger.domain.events import OPERATOR
from keyledger.domain.roles import ROLE_NAMES
from keyledger.workers.rebuild import Rebuilder
from tests.integration.test_projector import snapshot

TOKEN = re.compile(r"kl[as]k_[0-9a-f]{16}[0-9A-Za-z]{49}")


@pytest.fixture
def cli(container: Container, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REDIS_URL", container.settings.redis_url)
    monkeypatch.setenv("KEYLEDGER_PARTITIONS", str(container.settings.partitions))
    # The commands after the seed read the namespace from the environment; the seed is
    # given it with --namespace, over this decoy.
    monkeypatch.setenv("KEYLEDGER_NAMESPACE", container.settings.namespace)

    def invoke(*args: str) -> tuple[int, dict[str, Any], str]:
        result = CliRunner().invoke(main, [*args, "--json"])
        return result.exit_code, json.loads(result.stdout), result.stdout + result.stderr

    return invoke


def seed(cli: Any, namespace: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    return cli(
        "dev", "seed", "--accounts", "3", "--keys-per-account", "2", "--events", "300",
        "--namespace", namespace, *extra,
    )  # fmt: skip


def every_value(client: Any, namespace: str) -> list[str]:
    """Every key name and value of the namespace, as text."""
    found: list[str] = []
    for key in client.scan_iter(match=f"{namespace}*", count=1000):
        found.append(key)
        kind = client.type(key)
        if kind == "string":
            found.append(client.get(key))
        elif kind == "hash":
            found += [f"{k}={v}" for k, v in client.hgetall(key).items()]
        elif kind == "set":
            found += client.smembers(key)
        elif kind == "zset":
            found += client.zrange(key, 0, -1)
        elif kind == "stream":
            found += [json.dumps(fields) for _, fields in client.xrange(key)]
        elif kind == "list":
            found += client.lrange(key, 0, -1)
    return found


def test_a_seeded_history_verifies_and_a_rebuild_reproduces_its_projections(
    cli, container: Container, namespace: str, redis_client
) -> None:
    code, wrote, _ = seed(cli, namespace)
    assert code == 0, wrote
    assert wrote["accounts"] == 3 and wrote["secretKeys"] == 6 and wrote["secretKeysDeleted"] == 3
    assert wrote["events"] == 300 == wrote["projected"] and wrote["secretsWritten"] == 0
    assert wrote["users"] == 3 * len(ROLE_NAMES)

    code, verified, _ = cli("audit", "verify")
    assert code == 0 and verified["ok"] is True
    assert verified["accounts"] == 3 and verified["events"] == verified["logEntries"] == 300

    keys = container.keyspace
    types = [
        fields["type"]
        for p in range(keys.partitions)
        for _, fields in redis_client.xrange(keys.log(p))
    ]
    for kind in ("SecretKeyDeleted", "UserRemoved", "SourceSubnetAllowed", "SourceSubnetRemoved"):
        assert kind in types
    roles = {
        redis_client.hget(key, "role")
        for key in redis_client.scan_iter(match=f"{namespace}:*:auth:user:*", count=1000)
    }
    assert roles == set(ROLE_NAMES)  # users of every role
    subnets = list(redis_client.scan_iter(match=f"{namespace}:*:subnets", count=1000))
    assert subnets

    live = snapshot(redis_client, namespace)
    Rebuilder(container.redis, container.keyspace).run(["auth", "syslog"])
    assert snapshot(redis_client, namespace) == live


def test_a_namespace_that_holds_data_is_refused_unless_forced(
    cli, container: Container, namespace: str, redis_client
) -> None:
    container.ledger.register_account("Already here", "Ann", "ann@x.io", OPERATOR)
    before = snapshot(redis_client, namespace)

    code, refused, _ = seed(cli, namespace)
    assert code == 1 and refused["error"]["code"] == "namespace_not_empty"
    assert (
        namespace in refused["error"]["description"]
        and "--force" in refused["error"]["description"]
    )
    assert snapshot(redis_client, namespace) == before  # nothing written

    code, wrote, _ = seed(cli, namespace, "--force")
    assert code == 0 and wrote["accounts"] == 3
    code, verified, _ = cli("audit", "verify")
    assert verified["ok"] is True and verified["accounts"] == 4


def test_secrets_out_holds_working_keys_and_no_secret_is_kept_anywhere_else(
    cli, container: Container, namespace: str, redis_client, tmp_path: Path
) -> None:
    out = tmp_path / "keys.jsonl"
    code, wrote, printed = seed(cli, namespace, "--secrets-out", str(out))
    assert code == 0 and wrote["secretsWritten"] == 6
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 6 and all(
        set(line) == {"accountId", "accountKey", "name", "secretKey"} for line in lines
    )
    assert out.stat().st_mode & 0o077 == 0  # readable by its owner only
    for line in lines:
        assert container.authenticator.authenticate(
            method="GET",
            path="/v1/",
            source_ip="127.0.0.1",
            account_key=line["accountKey"],
            secret_key=line["secretKey"],
        ).allowed
    stored = "\n".join(every_value(redis_client, namespace))
    for line in lines:
        for secret in (line["accountKey"], line["secretKey"]):
            assert secret not in stored and secret not in printed
            assert secret[21:] not in stored  # not even the secret part alone


def test_without_secrets_out_no_key_is_written_or_printed(
    cli, container: Container, namespace: str, redis_client
) -> None:
    code, wrote, printed = seed(cli, namespace)
    assert code == 0 and wrote["secretKeys"] == 6
    assert not TOKEN.search(printed)
    assert not any(TOKEN.search(value) for value in every_value(redis_client, namespace))
