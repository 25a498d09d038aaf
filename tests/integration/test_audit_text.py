"""Audit text cannot be injected (review finding 5): refused at every entry point, quoted
in the system log, never raw in the CSV export."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from keyledger.bootstrap import Container
from keyledger.cli import main
from keyledger.domain import events as ev
from keyledger.domain.events import OPERATOR
from keyledger.workers.rebuild import Rebuilder
from tests.integration.helpers import Bootstrapped
from tests.integration.test_rebuild import wait_until_applied

ESCAPE_EMAIL = '"\x1b[31mred\x1b[0m"@example.com'
BELL_EMAIL = '"\x07red\x07"@example.com'
SENTENCE_NAME = "Bob' <x@y> added with role Owner. User 'Eve"


def headers(b: Bootstrapped, **extra: str) -> dict[str, str]:
    return {"x-api-key": b.account_key, "x-api-secret-key": b.secret_key, **extra}


def recorded(container: Container, b: Bootstrapped) -> tuple[int, int]:
    """The account's version and the length of its partition log: what a write moves."""
    keys = container.keyspace
    log = keys.log(keys.partition_of(b.account_id))
    return container.store.version(b.account_id), int(container.redis.xlen(log))


def error_fields(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 400, response.get_json()
    return response.get_json()["error"]["fields"]  # type: ignore[no-any-return]


# -- refused at the door, nothing written ------------------------------------------------------
@pytest.mark.parametrize("email", [ESCAPE_EMAIL, BELL_EMAIL])
def test_the_demonstrated_emails_are_refused_over_http_and_nothing_is_written(
    client: FlaskClient, container: Container, owner: Bootstrapped, email: str
) -> None:
    before = recorded(container, owner)
    response = client.post(
        "/v1/users", headers=headers(owner), json={"name": "Red", "email": email, "role": "Viewer"}
    )
    assert set(error_fields(response)) == {"email"}
    assert "\x1b" not in response.get_data(as_text=True)
    assert "\x07" not in response.get_data(as_text=True)
    assert recorded(container, owner) == before


@pytest.mark.parametrize("char", ["\x1b", "\u202e", "\u2066", "\u200f", "\x9b"])
def test_names_with_control_or_bidi_characters_are_refused_over_http(
    client: FlaskClient, container: Container, owner: Bootstrapped, char: str
) -> None:
    before = recorded(container, owner)
    added = client.post(
        "/v1/users",
        headers=headers(owner),
        json={"name": f"Eve{char}Admin", "email": "eve@x.io", "role": "Viewer"},
    )
    assert set(error_fields(added)) == {"name"}
    renamed = client.put(
        f"/v1/users/{owner.owner_id}", headers=headers(owner), json={"name": f"Ann{char}"}
    )
    assert set(error_fields(renamed)) == {"name"}
    subnet = client.post(
        f"/v1/api-keys/{owner.key_name}/allowed-source-ips",
        headers=headers(owner),
        json={"cidr": f"10.0.0.0/8{char}"},
    )
    assert set(error_fields(subnet)) == {"cidr"}
    assert recorded(container, owner) == before


@pytest.fixture
def cli(container: Container, projector, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("REDIS_URL", container.settings.redis_url)
    monkeypatch.setenv("KEYLEDGER_NAMESPACE", container.settings.namespace)
    monkeypatch.setenv("KEYLEDGER_PARTITIONS", str(container.settings.partitions))

    def invoke(*args: str) -> tuple[int, dict[str, Any]]:
        result = CliRunner().invoke(main, [*args, "--json"])
        return result.exit_code, json.loads(result.stdout)

    return invoke


def log_lengths(container: Container) -> list[int]:
    keys = container.keyspace
    return [int(container.redis.xlen(keys.log(p))) for p in range(keys.partitions)]


@pytest.mark.parametrize("email", [ESCAPE_EMAIL, BELL_EMAIL])
def test_the_demonstrated_emails_are_refused_by_the_cli_and_nothing_is_written(
    cli, container: Container, email: str
) -> None:
    before = log_lengths(container)
    code, body = cli(
        "account", "create", "--name", "Acme", "--owner-name", "Ann", "--owner-email", email
    )
    assert code == 1 and set(body["error"]["fields"]) == {"email"}
    assert log_lengths(container) == before


def test_the_cli_refuses_bidi_names_and_control_characters_in_subnets(
    cli, container: Container, owner: Bootstrapped
) -> None:
    before = log_lengths(container)
    code, body = cli(
        "account",
        "create",
        "--name",
        "Acme\u202e",
        "--owner-name",
        "Ann",
        "--owner-email",
        "a@x.io",
    )
    assert code == 1 and set(body["error"]["fields"]) == {"name"}
    code, body = cli(
        "key",
        "create",
        "--account",
        owner.account_id,
        "--user",
        owner.owner_id,
        "--name",
        "cli-made-key-01",
        "--cidr",
        "10.0.0.0/8\x1b",
    )
    assert code == 1 and set(body["error"]["fields"]) == {"allowedSourceIps"}
    assert log_lengths(container) == before


# -- quoted in the system log -----------------------------------------------------------------
def newest_entry(client: FlaskClient, owner: Bootstrapped) -> dict[str, Any]:
    page = client.get("/v1/logs?limit=1", headers=headers(owner)).get_json()
    return page["entries"][0]  # type: ignore[no-any-return]


def test_a_name_that_reads_as_a_sentence_stays_inside_its_quotes_in_the_log(
    client: FlaskClient, owner: Bootstrapped
) -> None:
    response = client.post(
        "/v1/users",
        headers=headers(owner),
        json={"name": SENTENCE_NAME, "email": "eve@x.io", "role": "Viewer"},
    )
    assert response.status_code == 201
    assert newest_entry(client, owner)["description"] == (
        'User "Bob\' <x@y> added with role Owner. User \'Eve" with email "eve@x.io" '
        "added with role Viewer"
    )


def test_a_double_quote_in_a_name_shows_escaped(client: FlaskClient, owner: Bootstrapped) -> None:
    client.post(
        "/v1/users",
        headers=headers(owner),
        json={"name": 'Eve" added. "Mallory', "email": "eve@x.io", "role": "Viewer"},
    )
    description = newest_entry(client, owner)["description"]
    assert (
        description
        == 'User "Eve\\" added. \\"Mallory" with email "eve@x.io" added with role Viewer'
    )


def record_directly(container: Container, b: Bootstrapped, email: str) -> None:
    """An event as an older keyledger could have recorded it, before the refusal existed."""
    state = container.ledger.state(b.account_id)
    event = ev.UserAdded(
        account_id=b.account_id,
        version=state.version + 1,
        time=datetime.now(UTC),
        actor=OPERATOR,
        user_id="old-user-0001",
        name="Old Red",
        email=email,
        role="Viewer",
    )
    container.store.append(b.account_id, state.version, [event])


def test_control_characters_recorded_earlier_never_reach_the_log_or_its_csv_raw(
    client: FlaskClient, container: Container, owner: Bootstrapped
) -> None:
    record_directly(container, owner, ESCAPE_EMAIL)
    wait_until_applied(container)
    description = newest_entry(client, owner)["description"]
    assert "\x1b" not in description
    assert description == (
        'User "Old Red" with email "\\"\\u001b[31mred\\u001b[0m\\"@example.com" '
        "added with role Viewer"
    )
    exported = client.get("/v1/logs", headers=headers(owner, Accept="text/csv"))
    assert not any(c in exported.get_data(as_text=True) for c in "\x1b\x07\x7f")
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert rows[1][7] == description


def test_a_rebuild_re_renders_entries_written_in_an_older_wording(
    client: FlaskClient, container: Container, owner: Bootstrapped, redis_client
) -> None:
    record_directly(container, owner, BELL_EMAIL)
    wait_until_applied(container)
    key = container.keyspace.syslog(owner.account_id)
    entries = redis_client.xrange(key)
    old = json.loads(entries[-1][1]["entry"])
    old["description"] = f"User 'Old Red' <{BELL_EMAIL}> added with role Viewer"  # as it was
    entries[-1] = (entries[-1][0], {"entry": json.dumps(old, separators=(",", ":"))})
    redis_client.delete(key)
    for entry_id, fields in entries:
        redis_client.xadd(key, fields, id=entry_id)
    assert "\x07" in newest_entry(client, owner)["description"]  # the live entry stays as it was

    Rebuilder(container.redis, container.keyspace).run(["syslog"])

    description = newest_entry(client, owner)["description"]
    assert description.startswith('User "Old Red" with email "\\"\\u0007red')
    assert "\x07" not in description


def test_a_sentence_given_as_a_name_to_the_cli_stays_inside_its_quotes(
    cli, container: Container
) -> None:
    code, created = cli(
        "account",
        "create",
        "--name",
        'Acme "Inc"',
        "--owner-name",
        SENTENCE_NAME,
        "--owner-email",
        "bob@x.io",
    )
    assert code == 0
    wait_until_applied(container)
    page = container.system_log.page(created["accountId"], offset=0, limit=10)
    assert [e["description"] for e in page.entries] == [
        'User "Bob\' <x@y> added with role Owner. User \'Eve" with email "bob@x.io" '
        "added with role Owner",
        'Account "Acme \\"Inc\\"" registered',
    ]
