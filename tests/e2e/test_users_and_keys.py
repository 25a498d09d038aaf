"""Users and secret keys through the API, and read-your-writes across both workers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.client import ApiClient, error_of
from tests.e2e.harness import Stack, Tenant, WebServer, burst, statuses, unique_key_name

pytestmark = pytest.mark.e2e

#: How many times the delete-then-request cycle is repeated.
CYCLES = 3


def both_workers_served(web: WebServer, client: ApiClient, expect: int, rounds: int = 20) -> None:
    """Send bursts until both gunicorn workers have answered ``expect`` for this client."""
    pids: set[str] = set()
    for _ in range(rounds):
        responses = burst(client, n=6, concurrency=6)
        assert statuses(responses) == [expect] * len(responses)
        served = web.worker_of([r.headers["X-Request-Id"] for r in responses])
        pids.update(served.values())
        if len(pids) >= 2:
            return
    raise AssertionError(f"only worker(s) {pids} answered in {rounds} bursts")


# -- users ----------------------------------------------------------------------------------
def test_added_user_is_201_and_listed_without_a_key(tenant: Tenant) -> None:
    user = tenant.owner.add_user("Vera Viewer", "vera@example.com", "Viewer")

    assert set(user) == {"id", "name", "email", "role", "hasApiKey"}
    assert (user["name"], user["email"], user["role"]) == (
        "Vera Viewer",
        "vera@example.com",
        "Viewer",
    )
    assert user["hasApiKey"] is False
    listed = {u["id"]: u for u in tenant.owner.users()}
    assert listed[user["id"]] == user
    assert tenant.owner.user(user["id"]) == user


def test_has_api_key_follows_the_users_keys(tenant: Tenant) -> None:
    user = tenant.owner.add_user("Kim Keyholder", role="Owner")
    name = unique_key_name("kim")

    tenant.owner.create_key(name, user["id"])
    assert tenant.owner.user(user["id"])["hasApiKey"] is True
    listed = {u["id"]: u for u in tenant.owner.users()}
    assert listed[user["id"]]["hasApiKey"] is True
    assert listed[tenant.owner_user_id]["hasApiKey"] is True

    tenant.owner.delete_key(name)
    assert tenant.owner.user(user["id"])["hasApiKey"] is False


def test_put_changes_role_and_name(tenant: Tenant) -> None:
    user = tenant.owner.add_user("Rita Role", role="Viewer")

    changed = tenant.owner.update_user(user["id"], role="Logs Viewer")
    assert changed["role"] == "Logs Viewer"
    renamed = tenant.owner.update_user(user["id"], name="Rita Renamed")
    assert (renamed["name"], renamed["role"]) == ("Rita Renamed", "Logs Viewer")
    assert tenant.owner.user(user["id"])["name"] == "Rita Renamed"


def test_deleting_a_user_deletes_their_keys_at_once(tenant: Tenant, web: WebServer) -> None:
    user = tenant.owner.add_user("Dora Doomed", role="Viewer")
    names = [unique_key_name("dora") for _ in range(2)]
    clients = [tenant.client(tenant.owner.create_key(n, user["id"])["secretKey"]) for n in names]
    for client in clients:
        both_workers_served(web, client, 200)

    response = tenant.owner.delete_user(user["id"])
    assert response.content == b""

    for client in clients:
        assert client.get("/v1/").status_code == 401
        assert statuses(burst(client)) == [401] * 8
    remaining = {k["name"] for k in tenant.owner.api_keys()}
    assert remaining.isdisjoint(names)
    tenant.owner.user(user["id"], expect=404)
    assert user["id"] not in {u["id"] for u in tenant.owner.users()}


def test_unknown_user_is_404(tenant: Tenant) -> None:
    for response in (
        tenant.owner.get("/v1/users/no-such-user", expect=404),
        tenant.owner.put("/v1/users/no-such-user", json={"role": "Viewer"}, expect=404),
        tenant.owner.delete("/v1/users/no-such-user", expect=404),
    ):
        assert error_of(response)["code"] == "not_found"


def test_the_last_owner_cannot_be_removed_or_demoted(stack: Stack) -> None:
    alone = stack.bootstrap("Solo Ltd")

    response = alone.owner.delete(f"/v1/users/{alone.owner_user_id}", expect=409)
    assert error_of(response)["code"] == "conflict"
    before = alone.owner.all_events()

    alone.owner.update_user(alone.owner_user_id, role="Viewer", expect=409)
    alone.owner.update_user(alone.owner_user_id, name="Renamed First", role="Viewer", expect=409)

    assert alone.owner.all_events() == before  # not even the rename was recorded
    assert alone.owner.whoami()["account"]["key"]["owner"]["name"] == alone.owner_name


def test_duplicate_email_is_a_conflict(tenant: Tenant) -> None:
    tenant.owner.add_user("First Twin", "twin@example.com", "Viewer")
    response = tenant.owner.post(
        "/v1/users",
        json={"name": "Second Twin", "email": "TWIN@example.com", "role": "Viewer"},
        expect=409,
    )
    assert error_of(response)["code"] == "conflict"


# -- secret keys ----------------------------------------------------------------------------
def test_created_key_shows_its_secret_once(tenant: Tenant) -> None:
    name = unique_key_name("once")

    created = tenant.owner.create_key(name, tenant.owner_user_id)

    assert set(created) == {
        "name",
        "userId",
        "accountId",
        "allowedSourceIps",
        "createdTimestamp",
        "secretKey",
        "description",
        "status",
        "enabled",
        "expiresTimestamp",
        "previousSecretExpiresTimestamp",
        "lastUsedTimestamp",
        "lastUsedSourceIp",
    }
    assert (created["status"], created["lastUsedTimestamp"]) == ("active", None)
    secret = created["secretKey"]
    assert secret.startswith("klsk_")
    assert (created["name"], created["userId"], created["accountId"]) == (
        name,
        tenant.owner_user_id,
        tenant.account_id,
    )
    listing = tenant.owner.get("/v1/api-keys", expect=200)
    item = tenant.owner.get(f"/v1/api-keys/{name}", expect=200)
    for response in (listing, item):
        assert "secretKey" not in response.text
        assert secret not in response.text
    assert name in {k["name"] for k in listing.json()["apiKeys"]}
    assert item.json() == {k: v for k, v in created.items() if k != "secretKey"}
    assert tenant.client(secret).whoami()["account"]["key"]["name"] == name


def test_created_key_keeps_canonical_source_subnets(tenant: Tenant) -> None:
    name = unique_key_name("subnets")
    created = tenant.owner.create_key(
        name, tenant.owner_user_id, allowed_source_ips=["127.0.0.0/8", "2001:DB8::/32"]
    )
    assert created["allowedSourceIps"] == ["127.0.0.0/8", "2001:db8::/32"]
    key = tenant.client(created["secretKey"]).whoami()["account"]["key"]
    assert key["allowedSourceIps"] == ["127.0.0.0/8", "2001:db8::/32"]


def test_duplicate_key_name_is_409(tenant: Tenant) -> None:
    name = unique_key_name("dup")
    tenant.owner.create_key(name, tenant.owner_user_id)
    before = tenant.owner.event_count()

    response = tenant.owner.post(
        "/v1/api-keys", json={"name": name, "userId": tenant.owner_user_id}, expect=409
    )

    assert error_of(response)["code"] == "conflict"
    assert "secretKey" not in response.text
    assert tenant.owner.event_count() == before


def test_a_user_may_hold_many_keys(tenant: Tenant) -> None:
    user = tenant.owner.add_user("Manny Keys", role="Viewer")
    secrets = [
        tenant.owner.create_key(unique_key_name("many"), user["id"])["secretKey"] for _ in range(3)
    ]
    assert len(set(secrets)) == 3
    for secret in secrets:
        assert tenant.client(secret).users()


def test_deleted_key_is_refused_on_the_very_next_request_by_every_worker(
    tenant: Tenant, web: WebServer
) -> None:
    name = unique_key_name("doomed")
    for cycle in range(CYCLES):
        # The same name each time: a re-created key must not inherit the old secret.
        secret = tenant.owner.create_key(name, tenant.owner_user_id)["secretKey"]
        victim = tenant.client(secret)
        both_workers_served(web, victim, 200)  # each worker has verified and remembered it

        tenant.owner.delete_key(name)

        first = victim.get("/v1/")
        assert first.status_code == 401, f"cycle {cycle}: the next request was accepted"
        both_workers_served(web, victim, 401)
        for _ in range(5):
            assert victim.get("/v1/").status_code == 401
        tenant.owner.api_key(name, expect=404)


def test_deleting_an_unknown_key_is_404(tenant: Tenant) -> None:
    response = tenant.owner.delete_key("no-such-key-here", expect=404)
    assert error_of(response)["code"] == "not_found"
    tenant.owner.api_key("no-such-key-here", expect=404)


def test_a_key_may_delete_itself_and_is_refused_right_after(tenant: Tenant) -> None:
    name = unique_key_name("self")
    client = tenant.client(tenant.owner.create_key(name, tenant.owner_user_id)["secretKey"])

    client.delete_key(name)

    assert client.get("/v1/").status_code == 401
    tenant.owner.api_key(name, expect=404)


def test_concurrent_creates_of_one_name_make_exactly_one_key(tenant: Tenant) -> None:
    name = unique_key_name("race")
    body = {"name": name, "userId": tenant.owner_user_id}
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda _: tenant.owner.post("/v1/api-keys", json=body), range(6)))

    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1 and set(codes) <= {201, 409}, codes
    winner = next(r for r in responses if r.status_code == 201).json()["secretKey"]
    assert tenant.client(winner).whoami()["account"]["key"]["name"] == name
    events = tenant.owner.all_events()
    created = [e for e in events if e["type"] == "SecretKeyCreated" and e["data"]["name"] == name]
    assert len(created) == 1


def test_concurrent_user_additions_are_each_applied_or_refused(tenant: Tenant) -> None:
    before = {u["id"] for u in tenant.owner.users()}
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(
            pool.map(
                lambda i: tenant.owner.post(
                    "/v1/users",
                    json={"name": f"Racer {i}", "email": f"racer{i}@example.com", "role": "Viewer"},
                ),
                range(6),
            )
        )

    added = [r.json()["id"] for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert all(r.status_code == 409 for r in refused), [r.text for r in refused]
    assert added, "every concurrent addition lost"
    after = {u["id"] for u in tenant.owner.users()}
    assert after - before == set(added)
    versions = [e["version"] for e in tenant.owner.all_events()]
    assert versions == list(range(1, len(versions) + 1))
