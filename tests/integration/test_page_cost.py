"""Every request costs what its page holds, not the account's history (review finding 4).

An account gets a few thousand events; then each demonstrated request runs under
``MONITOR``, and the test counts what Redis read for it, the reads of Lua scripts
included: stream entries (``XRANGE``/``XREVRANGE``, by their ``COUNT`` or a single-id
range) and index members (``ZREVRANGE``, by its rank span). Before the index the
filtered log page read every entry of the account and ``/v1/events`` past the head
read the whole stream; here each stays within a small bound that does not grow with
the history.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from keyledger.bootstrap import Container
from keyledger.domain import events as ev
from keyledger.domain.events import OPERATOR
from tests.integration.helpers import Bootstrapped
from tests.integration.monitor import Command, commands_on
from tests.integration.test_rebuild import wait_until_applied

HISTORY = 3000
#: Probes of the bisection that finds a version in an account stream: about 41 for
#: the milliseconds of a long-lived account, a few for the sequence numbers.
PROBES = 100


def grow(container: Container, b: Bootstrapped, count: int, chunk: int = 500) -> None:
    """``count`` more events on the owner's key (a subnet allowed, then removed, ...),
    appended in bulk through the real event store."""
    state = container.ledger.accounts.load(b.account_id)
    key, version = state.key(b.key_name), state.version
    allowed = "10.99.0.0/16" in key.allowed_source_ips
    for start in range(0, count, chunk):
        batch: list[ev.Event] = []
        for _ in range(min(chunk, count - start)):
            kind = ev.SourceSubnetRemoved if allowed else ev.SourceSubnetAllowed
            batch.append(
                kind(
                    account_id=b.account_id,
                    version=version + len(batch) + 1,
                    time=datetime.now(UTC),
                    actor=OPERATOR,
                    name=key.name,
                    key_id=key.key_id,
                    cidr="10.99.0.0/16",
                )
            )
            allowed = not allowed
        container.store.append(b.account_id, version, batch)
        version += len(batch)


@pytest.fixture
def deep(container: Container, owner: Bootstrapped) -> Bootstrapped:
    """The owner's account with a user of its own and about ``HISTORY`` events."""
    container.ledger.add_user(owner.account_id, "Vic Viewer", "vic@x.io", "Viewer", OPERATOR)
    grow(container, owner, HISTORY)
    wait_until_applied(container)
    return owner


def headers(b: Bootstrapped) -> dict[str, str]:
    return {"x-api-key": b.account_key, "x-api-secret-key": b.secret_key}


def entries_read(commands: list[Command]) -> float:
    """Stream entries and index members the commands read (inf: an unbounded read)."""
    total: float = 0
    for command in commands:
        if command.name in {"XRANGE", "XREVRANGE"}:
            count = command.count_argument()
            single = command.args[1] == command.args[2]
            total += count if count is not None else (1 if single else math.inf)
        elif command.name in {"ZRANGE", "ZREVRANGE"}:
            total += int(command.args[2]) - int(command.args[1]) + 1
    return total


def get(client: FlaskClient, b: Bootstrapped, url: str) -> dict[str, Any]:
    response = client.get(url, headers=headers(b))
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def measured(
    client: FlaskClient, container: Container, b: Bootstrapped, url: str, what: str
) -> tuple[dict[str, Any], list[Command]]:
    """The response to ``url`` and the commands Redis ran on the account's ``what`` keys."""
    get(client, b, url)  # warm: authentication is cached after the first request
    with commands_on(container.settings.redis_url, f"{b.account_id}:{what}") as commands:
        body = get(client, b, url)
    return body, commands


# -- GET /v1/logs --------------------------------------------------------------------------
def test_a_resource_nothing_carries_costs_nothing_to_look_up(
    client: FlaskClient, container: Container, deep: Bootstrapped
) -> None:
    body, commands = measured(
        client, container, deep, "/v1/logs?limit=1&resourceId=nomatch", "syslog"
    )
    assert body["entries"] == []
    assert not [c for c in commands if c.name in {"XRANGE", "XREVRANGE"}]  # no entry is read
    assert entries_read(commands) <= 2 and len(commands) <= 6  # ZREVRANGE of an empty index


@pytest.mark.parametrize("offset", [0, 1500, HISTORY - 10])
def test_a_resource_filtered_page_reads_its_own_entries_at_any_offset(
    client: FlaskClient, container: Container, deep: Bootstrapped, offset: int
) -> None:
    url = f"/v1/logs?limit=5&offset={offset}&resourceId={deep.key_name}"
    body, commands = measured(client, container, deep, url, "syslog")
    assert len(body["entries"]) == 5
    assert {e["resourceId"] for e in body["entries"]} == {deep.key_name}
    assert entries_read(commands) <= 2 * (5 + 1)  # the ids, then each entry by its id


@pytest.mark.parametrize("offset", [0, HISTORY - 10])
def test_an_unfiltered_page_reads_its_own_entries_at_any_offset(
    client: FlaskClient, container: Container, deep: Bootstrapped, offset: int
) -> None:
    body, commands = measured(
        client, container, deep, f"/v1/logs?limit=5&offset={offset}", "syslog"
    )
    assert len(body["entries"]) == 5
    assert entries_read(commands) <= 2 * (5 + 1)


def test_a_time_window_page_reads_its_bounds_and_its_entries(
    client: FlaskClient, container: Container, deep: Bootstrapped
) -> None:
    start, end = "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"
    url = f"/v1/logs?limit=5&offset=100&startTime={start}&endTime={end}"
    body, commands = measured(client, container, deep, url, "syslog")
    assert len(body["entries"]) == 5
    assert entries_read(commands) <= 2 + 2 * (5 + 1)  # one entry per bound


def test_a_time_window_before_the_history_is_answered_from_its_bound(
    client: FlaskClient, container: Container, deep: Bootstrapped
) -> None:
    url = f"/v1/logs?limit=5&resourceId={deep.key_name}&endTime=2001-01-01T00:00:00Z"
    body, commands = measured(client, container, deep, url, "syslog")
    assert body["entries"] == []
    assert entries_read(commands) <= 1


# -- GET /v1/events ------------------------------------------------------------------------
def test_a_cursor_beyond_the_head_is_answered_from_the_head(
    client: FlaskClient, container: Container, deep: Bootstrapped
) -> None:
    body, commands = measured(
        client, container, deep, "/v1/events?after=9007199254740992&limit=1", ""
    )
    assert body == {"events": [], "links": []}
    assert entries_read(commands) == 0
    assert {c.name for c in commands if c.in_script} == {"HGET"}  # the head's version


def test_a_cursor_that_names_another_entry_costs_a_bisection_not_a_scan(
    client: FlaskClient, container: Container, deep: Bootstrapped
) -> None:
    first = get(client, deep, "/v1/events?limit=1")["events"][0]["id"]
    url = f"/v1/events?after=1500&afterId={first}&limit=3"
    body, commands = measured(client, container, deep, url, "")
    assert [e["version"] for e in body["events"]] == [1501, 1502, 1503]
    assert entries_read(commands) <= 4 + PROBES


def test_a_version_without_a_cursor_costs_a_bisection_not_a_scan(
    client: FlaskClient, container: Container, deep: Bootstrapped
) -> None:
    head = container.store.version(deep.account_id)
    for after in (1, 2000, head - 1):
        body, commands = measured(client, container, deep, f"/v1/events?after={after}&limit=2", "")
        assert [e["version"] for e in body["events"]] == list(range(after + 1, after + 3))[
            : head - after
        ]
        assert entries_read(commands) <= 3 + PROBES
