"""Replays for auditors on a real Redis: ``events replay``, ``state --at``, ``/v1/events``
paging and the CSV system log.

The ``journey`` fixture plays a known history with a controlled clock (one minute
between changes), so times name points between events exactly.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner, Result

from keyledger.bootstrap import Container, build
from keyledger.cli import main
from keyledger.domain.events import OPERATOR
from tests.integration.helpers import Bootstrapped, bootstrap

START = datetime(2026, 11, 28, 6, 0, 0, tzinfo=UTC)
VIC_KEY = "vic-deploy-key"


class Clock:
    """The ledger's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> None:
        self.now += timedelta(minutes=1)


@dataclass
class Journey:
    b: Bootstrapped
    vic_id: str = ""
    #: The account's version right after each named step, and the clock then.
    version: dict[str, int] = field(default_factory=dict)
    time: dict[str, datetime] = field(default_factory=dict)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(container: Container, clock: Clock, projector) -> Container:
    """The test's container (same Redis and namespace), with a clock the test moves."""
    return build(container.settings, clock=clock)


@pytest.fixture
def journey(timed: Container, clock: Clock) -> Journey:
    ledger = timed.ledger
    j = Journey(bootstrap(timed))
    account = j.b.account_id

    def step(name: str, change: Callable[[], Any]) -> None:
        clock.tick()
        change()
        j.version[name] = ledger.state(account).version
        j.time[name] = clock.now

    j.version["bootstrap"], j.time["bootstrap"] = ledger.state(account).version, START

    def add_vic() -> None:
        j.vic_id, _ = ledger.add_user(account, "Vic", "vic@example.com", "Viewer", OPERATOR)

    step("vic added", add_vic)
    step(
        "vic key",
        lambda: ledger.create_secret_key(account, VIC_KEY, j.vic_id, ("10.0.0.0/8",), OPERATOR),
    )
    step("subnet", lambda: ledger.allow_subnet(account, VIC_KEY, "192.168.0.0/16", OPERATOR))
    step("promoted", lambda: ledger.update_user(account, j.vic_id, None, "Owner", OPERATOR))
    step("key deleted", lambda: ledger.delete_secret_key(account, VIC_KEY, OPERATOR))
    step("api disabled", lambda: ledger.disable_api(account, OPERATOR))
    return j


@pytest.fixture
def cli(container: Container, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.setenv("REDIS_URL", container.settings.redis_url)
    monkeypatch.setenv("KEYLEDGER_NAMESPACE", container.settings.namespace)
    monkeypatch.setenv("KEYLEDGER_PARTITIONS", str(container.settings.partitions))
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args))

    return invoke


def headers(b: Bootstrapped, secret: str | None = None, **extra: str) -> dict[str, str]:
    return {"x-api-key": b.account_key, "x-api-secret-key": secret or b.secret_key, **extra}


def replay(cli: Callable[..., Result], account_id: str, *args: str) -> list[dict[str, Any]]:
    result = cli("events", "replay", "--account", account_id, *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def state(cli: Callable[..., Result], account_id: str, at: str) -> dict[str, Any]:
    result = cli("state", "--account", account_id, "--at", at, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- events replay -------------------------------------------------------------------------
def test_replay_prints_the_whole_history_as_json_lines_in_order(cli, journey: Journey) -> None:
    events = replay(cli, journey.b.account_id)
    assert [e["version"] for e in events] == list(range(1, journey.version["api disabled"] + 1))
    assert events[0]["type"] == "AccountRegistered"
    assert events[-1]["type"] == "ApiDisabled"
    assert all(
        list(e) == ["id", "version", "type", "schemaVersion", "time", "actor", "data"]
        for e in events
    )


def test_replay_lines_are_the_items_of_the_events_api(cli, client, owner: Bootstrapped) -> None:
    client.post(
        "/v1/users",
        headers=headers(owner),
        json={"name": "Vic", "email": "v@x.io", "role": "Viewer"},
    )
    api = client.get("/v1/events?limit=1000", headers=headers(owner)).get_json()["events"]
    assert replay(cli, owner.account_id) == api


def test_replay_holds_no_key_hash_key_id_or_secret(cli, journey: Journey) -> None:
    result = cli("events", "replay", "--account", journey.b.account_id)
    for forbidden in ("argon2", "keyHash", "key_hash", "keyId", "key_id", "klak_", "klsk_"):
        assert forbidden not in result.stdout


def test_replay_as_csv_has_a_header_and_one_row_per_event(cli, journey: Journey) -> None:
    result = cli("events", "replay", "--account", journey.b.account_id, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["id", "version", "type", "schemaVersion", "time", "actor", "data"]
    events = replay(cli, journey.b.account_id)
    assert len(rows) == len(events) + 1
    for row, event in zip(rows[1:], events, strict=True):
        assert row[:5] == [
            event["id"],
            str(event["version"]),
            event["type"],
            str(event["schemaVersion"]),
            event["time"],
        ]
        assert json.loads(row[5]) == event["actor"]
        assert json.loads(row[6]) == event["data"]
        assert ": " not in row[6]


def test_version_bounds_are_inclusive(cli, journey: Journey) -> None:
    events = replay(cli, journey.b.account_id, "--from", "6", "--until", "9")
    assert [e["version"] for e in events] == [6, 7, 8, 9]


def test_entry_id_bounds_are_inclusive(cli, journey: Journey) -> None:
    everything = replay(cli, journey.b.account_id)
    first, last = everything[2]["id"], everything[6]["id"]
    events = replay(cli, journey.b.account_id, "--from", first, "--until", last)
    assert events == everything[2:7]


def test_a_time_bound_includes_the_events_at_that_moment(cli, journey: Journey) -> None:
    subnet = journey.version["subnet"]
    events = replay(cli, journey.b.account_id, "--until", iso(journey.time["subnet"]))
    assert events[-1]["version"] == subnet
    events = replay(cli, journey.b.account_id, "--from", iso(journey.time["subnet"]))
    assert events[0]["version"] == subnet


def test_a_time_between_changes_splits_the_history(cli, journey: Journey) -> None:
    between = iso(journey.time["subnet"] + timedelta(seconds=30))
    before = replay(cli, journey.b.account_id, "--until", between)
    after = replay(cli, journey.b.account_id, "--from", between)
    assert before[-1]["version"] == journey.version["subnet"]
    assert before + after == replay(cli, journey.b.account_id)


def test_a_range_that_selects_nothing_prints_nothing(cli, journey: Journey) -> None:
    assert replay(cli, journey.b.account_id, "--from", "999") == []
    result = cli(
        "events", "replay", "--account", journey.b.account_id, "--from", "999", "--format", "csv"
    )
    assert result.stdout.splitlines() == ["id,version,type,schemaVersion,time,actor,data"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--from", "abc"], "--from"),
        (["--until", "2026-11-28"], "give a time too"),
        (["--until", "2026-13-45T99:00:00Z"], "--until"),
        (["--from", "0"], "versions start at 1"),
        (["--from", "9", "--until", "6"], "after its end"),
        (["--format", "xml"], "--format"),
    ],
)
def test_bad_bounds_are_usage_errors(cli, journey: Journey, args: list[str], says: str) -> None:
    result = cli("events", "replay", "--account", journey.b.account_id, *args)
    assert result.exit_code == 2
    assert says in result.output
    assert result.stdout == ""


def test_replaying_an_unknown_account_is_an_error(cli, container: Container) -> None:
    result = cli("events", "replay", "--account", "no-such-account")
    assert result.exit_code == 1
    assert "not found" in result.output


# -- state at a point ----------------------------------------------------------------------
def test_state_before_and_after_a_key_deletion(cli, journey: Journey) -> None:
    before = state(cli, journey.b.account_id, str(journey.version["key deleted"] - 1))
    after = state(cli, journey.b.account_id, str(journey.version["key deleted"]))
    assert VIC_KEY in [k["name"] for k in before["apiKeys"]]
    assert [k["name"] for k in after["apiKeys"]] == [journey.b.key_name]


def test_state_before_and_after_a_role_change(cli, journey: Journey) -> None:
    def vic_role(at: int) -> str:
        users = state(cli, journey.b.account_id, str(at))["users"]
        return next(u["role"] for u in users if u["id"] == journey.vic_id)

    assert vic_role(journey.version["promoted"] - 1) == "Viewer"
    assert vic_role(journey.version["promoted"]) == "Owner"


def test_state_before_and_after_a_subnet_change(cli, journey: Journey) -> None:
    def vic_key(at: int) -> dict[str, Any]:
        keys = state(cli, journey.b.account_id, str(at))["apiKeys"]
        return next(k for k in keys if k["name"] == VIC_KEY)

    before = vic_key(journey.version["subnet"] - 1)
    after = vic_key(journey.version["subnet"])
    assert before["allowedSourceIps"] == ["10.0.0.0/8"]
    assert after["allowedSourceIps"] == ["10.0.0.0/8", "192.168.0.0/16"]
    assert after["userId"] == journey.vic_id
    assert after["createdTimestamp"] == journey.time["vic key"].strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_state_before_and_after_the_api_is_disabled(cli, journey: Journey) -> None:
    before = state(cli, journey.b.account_id, str(journey.version["api disabled"] - 1))
    after = state(cli, journey.b.account_id, str(journey.version["api disabled"]))
    assert before["apiEnabled"] is True and after["apiEnabled"] is False
    assert before["hasAccountKey"] is True and after["hasAccountKey"] is True


def test_state_at_a_time_is_the_state_after_the_last_change_by_then(cli, journey: Journey) -> None:
    at = state(cli, journey.b.account_id, iso(journey.time["promoted"] + timedelta(seconds=59)))
    assert at["version"] == journey.version["promoted"]
    assert at["time"] == journey.time["promoted"].strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_state_at_an_entry_id_is_the_state_after_that_event(cli, journey: Journey) -> None:
    event = replay(cli, journey.b.account_id)[journey.version["vic added"] - 1]
    at = state(cli, journey.b.account_id, event["id"])
    assert at["version"] == journey.version["vic added"]
    assert at["eventId"] == event["id"]
    assert {u["name"] for u in at["users"]} == {"Ann Owner", "Vic"}


def test_state_lists_everything_an_account_holds(cli, journey: Journey) -> None:
    at = state(cli, journey.b.account_id, str(journey.version["subnet"]))
    assert set(at) == {
        "accountId",
        "name",
        "version",
        "eventId",
        "time",
        "apiEnabled",
        "hasAccountKey",
        "previousAccountKeyExpiresTimestamp",
        "accountKeysReportedLeaked",
        "users",
        "apiKeys",
    }
    assert at["accountId"] == journey.b.account_id and at["name"] == "Acme"
    assert set(at["users"][0]) == {"id", "name", "email", "role"}
    assert set(at["apiKeys"][0]) == {
        "name",
        "userId",
        "allowedSourceIps",
        "createdTimestamp",
        "description",
        "enabled",
        "expiresTimestamp",
        "previousSecretExpiresTimestamp",
    }


def test_state_without_json_reads_as_text(cli, journey: Journey) -> None:
    result = cli("state", "--account", journey.b.account_id, "--at", str(journey.version["subnet"]))
    assert result.exit_code == 0, result.output
    assert "API enabled" in result.stdout
    assert "10.0.0.0/8, 192.168.0.0/16" in result.stdout
    assert "Vic <vic@example.com>  Viewer" in result.stdout


def test_state_before_the_account_existed_is_not_found(cli, journey: Journey) -> None:
    result = cli(
        "state", "--account", journey.b.account_id, "--at", "2000-01-01T00:00:00Z", "--json"
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["status"] == 404


def test_a_bad_point_in_time_is_a_usage_error(cli, journey: Journey) -> None:
    result = cli("state", "--account", journey.b.account_id, "--at", "last tuesday")
    assert result.exit_code == 2 and "--at" in result.output


def test_state_comes_from_the_events_alone(cli, container: Container) -> None:
    container.ledger.apply_timeout = 0.05  # no projector runs: projections stay empty
    b = bootstrap(container)
    at = state(cli, b.account_id, "5")
    assert at["apiEnabled"] is True
    assert [k["name"] for k in at["apiKeys"]] == [b.key_name]


# -- GET /v1/events paging -----------------------------------------------------------------
@pytest.fixture
def long_history(container: Container, owner: Bootstrapped) -> Bootstrapped:
    for n in range(6):
        container.ledger.allow_subnet(owner.account_id, owner.key_name, f"127.{n}.0.0/16", OPERATOR)
        container.ledger.remove_subnet(
            owner.account_id, owner.key_name, f"127.{n}.0.0/16", OPERATOR
        )
    return owner  # 5 + 12 = 17 events


@pytest.fixture
def reads(container: Container, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Spies on the event store: every read's start, and every scan from the beginning."""
    seen: dict[str, list[Any]] = {"reads": [], "scans": []}
    store = container.store
    read, scan = store.read_account, store.iter_account

    def spy_read(account_id: str, after: str = "0", count: int = 1000) -> Any:
        seen["reads"].append(after)
        return read(account_id, after, count)

    def spy_scan(account_id: str, after: str = "0", batch: int = 1000) -> Any:
        seen["scans"].append(after)
        return scan(account_id, after, batch)

    monkeypatch.setattr(store, "read_account", spy_read)
    monkeypatch.setattr(store, "iter_account", spy_scan)
    return seen


def next_link(page: dict[str, Any]) -> str | None:
    return next((x["href"] for x in page["links"] if x["rel"] == "next"), None)


def test_following_next_links_pages_through_the_history_without_rescanning(
    client, long_history: Bootstrapped, reads: dict[str, list[Any]]
) -> None:
    href: str | None = "/v1/events?limit=5"
    seen: list[dict[str, Any]] = []
    while href is not None:
        page = client.get(href, headers=headers(long_history)).get_json()
        seen.extend(page["events"])
        href = next_link(page)
        if href is not None:
            query = parse_qs(urlsplit(href).query)
            assert query["after"] == [str(seen[-1]["version"])]
            assert query["afterId"] == [seen[-1]["id"]]
            assert query["limit"] == ["5"]
    assert [e["version"] for e in seen] == list(range(1, 18))
    assert reads["scans"] == []
    assert len(reads["reads"]) == 4  # one read per page


def test_paging_by_version_alone_gives_the_same_pages(
    client, long_history: Bootstrapped, reads: dict[str, list[Any]]
) -> None:
    everything = client.get("/v1/events?limit=1000", headers=headers(long_history)).get_json()
    seen: list[dict[str, Any]] = []
    after = 0
    while True:
        page = client.get(f"/v1/events?after={after}&limit=4", headers=headers(long_history))
        seen.extend(page.get_json()["events"])
        if next_link(page.get_json()) is None:
            break
        after = seen[-1]["version"]
    assert seen == everything["events"]
    assert reads["scans"] == []  # without the cursor the store finds the version itself


def test_a_cursor_naming_another_version_is_ignored(client, long_history: Bootstrapped) -> None:
    everything = client.get("/v1/events?limit=1000", headers=headers(long_history)).get_json()
    wrong = everything["events"][2]["id"]
    page = client.get(f"/v1/events?after=8&afterId={wrong}&limit=3", headers=headers(long_history))
    assert [e["version"] for e in page.get_json()["events"]] == [9, 10, 11]


@pytest.mark.parametrize("after_id", ["abc", "1-2-3", "18446744073709551616-0", ""])
def test_a_malformed_cursor_is_a_400_naming_it(client, owner: Bootstrapped, after_id: str) -> None:
    response = client.get(f"/v1/events?after=1&afterId={after_id}", headers=headers(owner))
    assert response.status_code == 400
    assert "afterId" in response.get_json()["error"]["fields"]


def test_the_last_page_has_no_next_link(client, owner: Bootstrapped) -> None:
    page = client.get("/v1/events?limit=5", headers=headers(owner)).get_json()
    assert len(page["events"]) == 5 and page["links"] == []
    assert client.get("/v1/events?after=5", headers=headers(owner)).get_json() == {
        "events": [],
        "links": [],
    }


# -- GET /v1/logs as CSV -------------------------------------------------------------------
CSV_HEADER = [
    "id",
    "time",
    "originator",
    "apiKeyName",
    "resource",
    "resourceId",
    "type",
    "description",
]


def csv_rows(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_logs_are_csv_when_the_client_prefers_it(client, owner: Bootstrapped) -> None:
    response = client.get("/v1/logs", headers=headers(owner, Accept="text/csv"))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=") and disposition.endswith('.csv"')
    assert "Accept" in response.headers["Vary"]
    rows = csv_rows(response)
    assert rows[0] == CSV_HEADER
    entries = client.get("/v1/logs", headers=headers(owner)).get_json()["entries"]
    assert rows[1:] == [[str(e.get(c, "")) for c in CSV_HEADER] for e in entries]


@pytest.mark.parametrize(
    "accept", [None, "*/*", "application/json", "text/csv;q=0.5, application/json"]
)
def test_logs_stay_json_by_default(client, owner: Bootstrapped, accept: str | None) -> None:
    extra = {"Accept": accept} if accept else {}
    response = client.get("/v1/logs", headers=headers(owner, **extra))
    assert response.content_type == "application/json"
    assert response.get_json()["entries"]


def test_csv_cells_a_spreadsheet_would_run_are_escaped(client, owner: Bootstrapped) -> None:
    user = client.post(
        "/v1/users",
        headers=headers(owner),
        json={"name": '=HYPERLINK("http://x")', "email": "eve@x.io", "role": "Owner"},
    ).get_json()
    secret = client.post(
        "/v1/api-keys", headers=headers(owner), json={"name": "-evil-key-01", "userId": user["id"]}
    ).get_json()["secretKey"]
    client.post(
        "/v1/users",
        headers=headers(owner, secret),
        json={"name": "@Mallory", "email": "m@x.io", "role": "Viewer"},
    )
    rows = csv_rows(client.get("/v1/logs?limit=1", headers=headers(owner, Accept="text/csv")))
    newest = dict(zip(CSV_HEADER, rows[1], strict=True))
    assert newest["originator"] == '\'=HYPERLINK("http://x")'
    assert newest["apiKeyName"] == "'-evil-key-01"
    assert newest["description"].startswith('User "@Mallory"')
    key_rows = csv_rows(
        client.get("/v1/logs?resourceId=-evil-key-01", headers=headers(owner, Accept="text/csv"))
    )
    assert [row[5] for row in key_rows[1:]] == ["'-evil-key-01"]


def test_csv_logs_keep_the_filters_and_page_with_a_link_header(client, owner: Bootstrapped) -> None:
    response = client.get(
        f"/v1/logs?resourceId={owner.key_name}&limit=1", headers=headers(owner, Accept="text/csv")
    )
    rows = csv_rows(response)
    assert len(rows) == 2 and rows[1][5] == owner.key_name
    assert "Link" not in response.headers  # the key has only one entry

    response = client.get("/v1/logs?limit=2&offset=1", headers=headers(owner, Accept="text/csv"))
    assert [row[0] for row in csv_rows(response)[1:]] == ["4", "3"]
    link_header = response.headers["Link"]
    assert 'rel="previous"' in link_header and 'rel="next"' in link_header
    assert "offset=3" in link_header and "limit=2" in link_header


def test_csv_logs_with_nothing_to_show_are_just_the_header(client, owner: Bootstrapped) -> None:
    response = client.get(
        "/v1/logs?endTime=1999-01-01T00:00:00Z", headers=headers(owner, Accept="text/csv")
    )
    assert csv_rows(response) == [CSV_HEADER]


def test_bad_parameters_are_json_errors_even_when_csv_is_asked_for(
    client, owner: Bootstrapped
) -> None:
    response = client.get("/v1/logs?limit=0", headers=headers(owner, Accept="text/csv"))
    assert response.status_code == 400
    assert response.get_json()["error"]["fields"]["limit"]


def test_openapi_document_describes_the_csv_logs_and_the_cursor(client) -> None:
    doc = client.get("/v1/openapi.json").get_json()
    content = doc["paths"]["/v1/logs"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/csv"}
    parameters = doc["paths"]["/v1/events"]["get"]["parameters"]
    assert "afterId" in {p["name"] for p in parameters}
