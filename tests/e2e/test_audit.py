"""The system log (``/v1/logs``) and the event history (``/v1/events``) after a known journey.

The module's fixture plays a fixed sequence of changes, by the operator (CLI)
and by two different keys of two different owners, and remembers what each log
entry must say and Redis's clock between the two halves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis

from tests.e2e.client import ApiClient, error_of
from tests.e2e.harness import MINTED, Stack, Tenant, secret_part, unique_key_name

pytestmark = pytest.mark.e2e

OPERATOR = "keyledger support"


@dataclass
class Expected:
    resource: str
    resource_id: str
    type: str
    originator: str
    api_key_name: str | None
    says: str


@dataclass
class Journey:
    tenant: Tenant
    reader: ApiClient
    expected: list[Expected] = field(default_factory=list)
    midpoint: datetime | None = None
    secrets: list[str] = field(default_factory=list)
    alice_id: str = ""
    alice_key: str = ""


def redis_now(client: redis.Redis) -> datetime:
    """Redis's own clock: stream ids (and so log times) come from it."""
    seconds, micros = client.time()
    return datetime.fromtimestamp(seconds + micros / 1_000_000, UTC)


def between_milliseconds(client: redis.Redis) -> datetime:
    """A moment strictly after everything so far and before anything that follows."""
    time.sleep(0.005)
    moment = redis_now(client)
    time.sleep(0.005)
    return moment


@pytest.fixture(scope="module")
def journey(stack: Stack, e2e_redis: redis.Redis) -> Journey:
    tenant = stack.bootstrap("Audited Inc")
    owner, owner_name, k0 = tenant.owner, tenant.owner_name, tenant.key_name
    j = Journey(tenant=tenant, reader=owner)
    exp = j.expected.append
    account = tenant.account_id
    exp(Expected("account", account, "create", OPERATOR, None, "Audited Inc"))
    exp(Expected("user", tenant.owner_user_id, "create", OPERATOR, None, owner_name))
    exp(Expected("account", account, "update", OPERATOR, None, "enabled"))
    exp(Expected("account-key", account, "create", OPERATOR, None, "issued"))
    exp(Expected("api-key", k0, "create", OPERATOR, None, k0))

    alice = owner.add_user("Alice Auditor", "alice@example.com", "Logs Viewer")
    j.alice_id = alice["id"]
    exp(Expected("user", alice["id"], "create", owner_name, k0, "Alice Auditor"))
    bob = owner.add_user("Bob Builder", "bob@example.com", "Owner")
    exp(Expected("user", bob["id"], "create", owner_name, k0, "Bob Builder"))
    k1 = unique_key_name("bob")
    bob_client = tenant.client(owner.create_key(k1, bob["id"])["secretKey"])
    exp(Expected("api-key", k1, "create", owner_name, k0, k1))

    j.midpoint = between_milliseconds(e2e_redis)

    k2 = unique_key_name("alice")
    j.alice_key = k2
    alice_secret = bob_client.create_key(k2, alice["id"])["secretKey"]
    exp(Expected("api-key", k2, "create", "Bob Builder", k1, k2))
    bob_client.allow_subnet(k2, "127.0.0.0/8")
    exp(Expected("api-key", k2, "update", "Bob Builder", k1, "127.0.0.0/8"))
    bob_client.remove_subnet(k2, "127.0.0.0/8")
    exp(Expected("api-key", k2, "update", "Bob Builder", k1, "127.0.0.0/8"))
    bob_client.update_user(alice["id"], name="Alice Renamed")
    exp(Expected("user", alice["id"], "update", "Bob Builder", k1, "Alice Renamed"))
    bob_client.update_user(alice["id"], role="Viewer")
    exp(Expected("user", alice["id"], "update", "Bob Builder", k1, "Viewer"))
    owner.delete_user(bob["id"])
    exp(Expected("api-key", k1, "delete", owner_name, k0, k1))
    exp(Expected("user", bob["id"], "delete", owner_name, k0, "Bob Builder"))

    new_account_key = stack.cli("account-key", "rotate", "--account", account)["accountKey"]
    exp(Expected("account-key", account, "delete", OPERATOR, None, "revoked"))
    exp(Expected("account-key", account, "create", OPERATOR, None, "issued"))
    j.reader = tenant.owner.with_keys(new_account_key, tenant.secret_key)
    j.secrets = [
        tenant.account_key,
        new_account_key,
        tenant.secret_key,
        alice_secret,
        bob_client.secret_key or "",
    ]
    assert set(j.secrets) <= MINTED.secrets
    return j


def all_log_entries(reader: ApiClient, **params: Any) -> list[dict[str, Any]]:
    return reader.logs(limit=1000, **params)["entries"]  # type: ignore[no-any-return]


def link(page: dict[str, Any], rel: str) -> dict[str, list[str]] | None:
    for item in page["links"]:
        if item["rel"] == rel:
            assert item["type"] == "GET"
            return parse_qs(urlsplit(item["href"]).query)
    return None


# -- the system log -------------------------------------------------------------------------
def test_system_log_is_newest_first_and_names_who_made_each_change(journey: Journey) -> None:
    entries = all_log_entries(journey.reader)

    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    assert len(entries) == len(journey.expected)
    for entry, want in zip(reversed(entries), journey.expected, strict=True):
        got = (entry["resource"], entry["resourceId"], entry["type"], entry["originator"])
        assert got == (want.resource, want.resource_id, want.type, want.originator), entry
        assert entry.get("apiKeyName") == want.api_key_name, entry
        assert want.says in entry["description"], entry
        assert entry["time"].endswith("Z")
        datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%SZ")


def test_every_event_has_exactly_one_log_entry(journey: Journey) -> None:
    entries = all_log_entries(journey.reader)
    events = journey.reader.all_events()
    assert sorted(e["id"] for e in entries) == [e["version"] for e in events]


def test_offset_and_limit_page_through_the_log_with_links(journey: Journey) -> None:
    everything = all_log_entries(journey.reader)
    seen: list[dict[str, Any]] = []
    offset, pages = 0, 0
    while True:
        page = journey.reader.logs(offset=offset, limit=4)
        assert len(page["entries"]) <= 4
        seen.extend(page["entries"])
        pages += 1
        previous = link(page, "previous")
        assert (previous is not None) == (offset > 0)
        following = link(page, "next")
        if following is None:
            break
        assert following["limit"] == ["4"]
        offset = int(following["offset"][0])
        assert offset == 4 * pages
    assert seen == everything
    assert pages == -(-len(everything) // 4)


def test_a_full_page_without_more_has_no_next_link(journey: Journey) -> None:
    count = len(all_log_entries(journey.reader))
    exact = journey.reader.logs(limit=count)
    assert len(exact["entries"]) == count
    assert link(exact, "next") is None
    assert journey.reader.logs(offset=count)["entries"] == []


def test_resource_id_selects_one_resources_entries(journey: Journey) -> None:
    for resource_id in (journey.alice_id, journey.alice_key):
        page = journey.reader.logs(resourceId=resource_id)
        wanted = [e for e in journey.expected if e.resource_id == resource_id]
        assert len(page["entries"]) == len(wanted) > 0
        assert {e["resourceId"] for e in page["entries"]} == {resource_id}
    assert journey.reader.logs(resourceId="nothing-has-this-id")["entries"] == []


def test_resource_id_is_kept_in_the_paging_links(journey: Journey) -> None:
    page = journey.reader.logs(resourceId=journey.alice_id, limit=1)
    following = link(page, "next")
    assert following is not None
    assert following["resourceId"] == [journey.alice_id]


def test_start_and_end_time_split_the_log(journey: Journey) -> None:
    assert journey.midpoint is not None
    midpoint = journey.midpoint.isoformat()
    everything = all_log_entries(journey.reader)

    later = all_log_entries(journey.reader, startTime=midpoint)
    earlier = all_log_entries(journey.reader, endTime=midpoint)

    assert later + earlier == everything
    assert [e["id"] for e in earlier] == list(range(8, 0, -1))  # bootstrap + 3 owner changes
    assert later[-1]["resourceId"] == journey.alice_key
    both = all_log_entries(journey.reader, startTime=midpoint, endTime=midpoint)
    assert both == []


def test_times_without_a_zone_are_utc(journey: Journey) -> None:
    assert journey.midpoint is not None
    naive = journey.midpoint.replace(tzinfo=None).isoformat()
    aware = journey.midpoint.isoformat()
    assert all_log_entries(journey.reader, startTime=naive) == all_log_entries(
        journey.reader, startTime=aware
    )


@pytest.mark.parametrize(
    ("params", "field_name"),
    [
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"startTime": "yesterday"}, "startTime"),
        ({"endTime": "2024-13-45T99:00:00Z"}, "endTime"),
        ({"startTime": "1969-12-31T23:59:59Z"}, "startTime"),
        ({"resourceId": ""}, "resourceId"),
    ],
)
def test_bad_log_parameters_are_400_naming_the_field(
    journey: Journey, params: dict[str, Any], field_name: str
) -> None:
    response = journey.reader.get("/v1/logs", params=params, expect=400)
    assert field_name in error_of(response).get("fields", {}), response.text


def test_the_largest_page_is_1000(journey: Journey) -> None:
    assert journey.reader.logs(limit=1000)["entries"]


# -- the event history ----------------------------------------------------------------------
def test_event_history_is_in_version_order(journey: Journey) -> None:
    events = journey.reader.all_events()

    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events[:5]] == [
        "AccountRegistered",
        "UserAdded",
        "ApiEnabled",
        "AccountKeyIssued",
        "SecretKeyCreated",
    ]
    assert [e["type"] for e in events[-2:]] == ["AccountKeyRevoked", "AccountKeyIssued"]
    assert events[5]["actor"]["apiKeyName"] == journey.tenant.key_name
    for event in events:
        assert {"id", "version", "type", "time", "actor", "data"} <= set(event)


def test_event_history_pages_with_links(journey: Journey) -> None:
    everything = journey.reader.all_events()
    seen: list[dict[str, Any]] = []
    after = 0
    while True:
        page = journey.reader.events(after=after, limit=3)
        seen.extend(page["events"])
        following = link(page, "next")
        if following is None:
            break
        assert following["limit"] == ["3"]
        after = int(following["after"][0])
        assert after == seen[-1]["version"]
    assert seen == everything
    tail = journey.reader.events(after=len(everything))
    assert tail == {"events": [], "links": []}


def test_event_history_holds_no_key_hash_and_no_secret(journey: Journey) -> None:
    pages = [journey.reader.get(f"/v1/events?after={n}&limit=5").text for n in range(0, 30, 5)]
    text = "".join(pages)
    assert "AccountKeyIssued" in text and "SecretKeyCreated" in text
    for forbidden in ("argon2", "key_hash", "keyHash", "klak_", "klsk_"):
        assert forbidden not in text
    for secret in journey.secrets:
        assert secret_part(secret) not in text


@pytest.mark.parametrize(
    ("params", "field_name"),
    [({"after": -1}, "after"), ({"limit": 1001}, "limit"), ({"after": "x"}, "after")],
)
def test_bad_history_parameters_are_400_naming_the_field(
    journey: Journey, params: dict[str, Any], field_name: str
) -> None:
    response = journey.reader.get("/v1/events", params=params, expect=400)
    assert field_name in error_of(response).get("fields", {}), response.text
