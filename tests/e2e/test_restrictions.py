"""Source-subnet allow lists and role restrictions, each taking effect on the next request."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.e2e.client import ApiClient, error_of
from tests.e2e.harness import Tenant, burst, statuses, unique_key_name

pytestmark = pytest.mark.e2e

#: A write that changes nothing when allowed (404), so it can be repeated freely.
HARMLESS_WRITE = ("DELETE", "/v1/api-keys/no-such-key-anywhere")


def new_key(tenant: Tenant, user_id: str | None = None, **extra: Any) -> tuple[str, ApiClient]:
    name = unique_key_name("restricted")
    secret = tenant.owner.create_key(name, user_id or tenant.owner_user_id, **extra)["secretKey"]
    return name, tenant.client(secret)


def holder(tenant: Tenant, role: str) -> tuple[dict[str, Any], ApiClient]:
    """A new user in ``role`` with one key."""
    user = tenant.owner.add_user(f"{role} Person", role=role)
    _, client = new_key(tenant, user["id"])
    return user, client


def forbidden(response: requests.Response) -> bool:
    return response.status_code == 403 and error_of(response)["code"] == "forbidden"


def all_forbidden(responses: list[requests.Response]) -> bool:
    return all(forbidden(r) for r in responses)


# -- source subnets -------------------------------------------------------------------------
def test_a_subnet_that_excludes_the_caller_gives_403_at_once(tenant: Tenant) -> None:
    name, client = new_key(tenant)
    assert statuses(burst(client)) == [200] * 8

    key = tenant.owner.allow_subnet(name, "10.0.0.0/8")

    assert key["allowedSourceIps"] == ["10.0.0.0/8"]
    assert forbidden(client.get("/v1/"))
    assert all_forbidden(burst(client))
    tenant.owner.whoami()  # other keys of the account are not affected


def test_adding_the_callers_subnet_restores_access_at_once(tenant: Tenant) -> None:
    name, client = new_key(tenant, allowed_source_ips=["10.0.0.0/8"])
    assert all_forbidden(burst(client))

    key = tenant.owner.allow_subnet(name, "127.0.0.0/8")

    assert key["allowedSourceIps"] == ["10.0.0.0/8", "127.0.0.0/8"]
    assert client.get("/v1/").status_code == 200
    assert statuses(burst(client)) == [200] * 8
    assert client.whoami()["account"]["key"]["allowedSourceIps"] == ["10.0.0.0/8", "127.0.0.0/8"]


def test_removing_the_callers_subnet_gives_403_again(tenant: Tenant) -> None:
    name, client = new_key(tenant, allowed_source_ips=["10.0.0.0/8", "127.0.0.0/8"])
    assert statuses(burst(client)) == [200] * 8

    key = tenant.owner.remove_subnet(name, "127.0.0.0/8")

    assert key["allowedSourceIps"] == ["10.0.0.0/8"]
    assert forbidden(client.get("/v1/"))
    assert all_forbidden(burst(client))


def test_removing_the_last_subnet_allows_any_source_again(tenant: Tenant) -> None:
    name, client = new_key(tenant, allowed_source_ips=["10.0.0.0/8"])
    assert forbidden(client.get("/v1/"))

    assert tenant.owner.remove_subnet(name, "10.0.0.0/8")["allowedSourceIps"] == []

    assert statuses(burst(client)) == [200] * 8


def test_an_ipv6_only_allow_list_refuses_an_ipv4_caller(tenant: Tenant) -> None:
    name, client = new_key(tenant, allowed_source_ips=["2001:db8::/32"])
    assert all_forbidden(burst(client, n=4))
    tenant.owner.allow_subnet(name, "127.0.0.1/32")
    assert client.get("/v1/").status_code == 200


@pytest.mark.parametrize(
    "cidr",
    [
        "10.0.0.1/8",
        "10.0.0.0/33",
        "300.0.0.0/8",
        "10.0.0.0",
        "10.0.0.0/08",
        "::ffff:127.0.0.0/104",  # IPv4-mapped: would never match an IPv4 caller
        "not a subnet",
        "",
    ],
)
def test_a_bad_subnet_is_400_naming_the_field_and_writes_nothing(tenant: Tenant, cidr: str) -> None:
    name, _ = new_key(tenant)
    before = tenant.owner.event_count()

    response = tenant.owner.post(
        f"/v1/api-keys/{name}/allowed-source-ips", json={"cidr": cidr}, expect=400
    )

    assert "cidr" in error_of(response).get("fields", {}), response.text
    assert tenant.owner.api_key(name)["allowedSourceIps"] == []
    assert tenant.owner.event_count() == before


def test_host_bits_in_a_new_keys_subnets_are_400_naming_the_field(tenant: Tenant) -> None:
    name = unique_key_name("hostbits")
    response = tenant.owner.post(
        "/v1/api-keys",
        json={"name": name, "userId": tenant.owner_user_id, "allowedSourceIps": ["10.0.0.1/8"]},
        expect=400,
    )
    assert "allowedSourceIps" in error_of(response).get("fields", {}), response.text
    tenant.owner.api_key(name, expect=404)


def test_the_whole_internet_is_refused_as_a_subnet(tenant: Tenant) -> None:
    name, _ = new_key(tenant)
    for cidr in ("0.0.0.0/0", "::/0"):
        response = tenant.owner.post(
            f"/v1/api-keys/{name}/allowed-source-ips", json={"cidr": cidr}, expect=400
        )
        assert "cidr" in error_of(response).get("fields", {})


def test_subnets_are_stored_canonically_and_once(tenant: Tenant) -> None:
    name, _ = new_key(tenant)
    assert tenant.owner.allow_subnet(name, "2001:DB8:0::/48")["allowedSourceIps"] == [
        "2001:db8::/48"
    ]
    response = tenant.owner.post(
        f"/v1/api-keys/{name}/allowed-source-ips", json={"cidr": "2001:db8::/48"}, expect=409
    )
    assert error_of(response)["code"] == "conflict"
    response = tenant.owner.delete(
        f"/v1/api-keys/{name}/allowed-source-ips", params={"cidr": "10.9.0.0/16"}, expect=404
    )
    assert error_of(response)["code"] == "not_found"
    assert tenant.owner.remove_subnet(name, "2001:DB8::/48")["allowedSourceIps"] == []


# -- roles ----------------------------------------------------------------------------------
def test_a_viewer_reads_but_cannot_write_or_read_the_event_history(tenant: Tenant) -> None:
    viewer_user, viewer = holder(tenant, "Viewer")
    before = tenant.owner.event_count()

    assert viewer.whoami()["account"]["key"]["owner"]["name"] == viewer_user["name"]
    assert viewer.users()
    assert viewer.api_keys()
    viewer.logs()
    denied = [
        viewer.post(
            "/v1/users", json={"name": "Nope", "email": "nope@example.com", "role": "Owner"}
        ),
        viewer.put(f"/v1/users/{viewer_user['id']}", json={"role": "Owner"}),
        viewer.delete(f"/v1/users/{tenant.owner_user_id}"),
        viewer.post("/v1/api-keys", json={"name": unique_key_name(), "userId": viewer_user["id"]}),
        viewer.delete(f"/v1/api-keys/{tenant.key_name}"),
        viewer.post(
            f"/v1/api-keys/{tenant.key_name}/allowed-source-ips", json={"cidr": "10.0.0.0/8"}
        ),
        viewer.get("/v1/events"),
    ]

    assert all_forbidden(denied), [(r.request.method, r.request.url, r.status_code) for r in denied]
    assert tenant.owner.event_count() == before
    assert tenant.owner.user(viewer_user["id"])["role"] == "Viewer"


def test_a_logs_viewer_reads_only_the_system_log_and_the_event_history(tenant: Tenant) -> None:
    _, auditor = holder(tenant, "Logs Viewer")

    assert auditor.logs()["entries"]
    assert auditor.events()["events"]
    denied = [
        auditor.get("/v1/users"),
        auditor.get("/v1/api-keys"),
        auditor.get("/v1/"),
        auditor.post("/v1/users", json={"name": "N", "email": "n@example.com", "role": "Owner"}),
        auditor.request(*HARMLESS_WRITE),
    ]
    assert all_forbidden(denied), [(r.request.url, r.status_code) for r in denied]


@pytest.mark.parametrize("role", ["Member", "Manager", "Billing Admin"])
def test_users_without_api_access_cannot_hold_a_key(tenant: Tenant, role: str) -> None:
    user = tenant.owner.add_user(f"{role} Nokey", role=role)
    name = unique_key_name("nokey")
    before = tenant.owner.event_count()

    response = tenant.owner.post("/v1/api-keys", json={"name": name, "userId": user["id"]})

    assert response.status_code == 400, response.text
    assert "userId" in error_of(response).get("fields", {})
    assert "secretKey" not in response.text
    assert tenant.owner.event_count() == before
    tenant.owner.api_key(name, expect=404)


def test_a_viewer_promoted_to_owner_can_write_at_once(tenant: Tenant) -> None:
    user, client = holder(tenant, "Viewer")
    assert all_forbidden(burst(client, 8, *HARMLESS_WRITE))

    tenant.owner.update_user(user["id"], role="Owner")

    added = client.add_user("Added By Promoted")  # the very next request
    assert added["role"] == "Owner"
    assert statuses(burst(client, 8, *HARMLESS_WRITE)) == [404] * 8


def test_an_owner_demoted_to_viewer_cannot_write_at_once(tenant: Tenant) -> None:
    user, client = holder(tenant, "Owner")
    assert statuses(burst(client, 8, *HARMLESS_WRITE)) == [404] * 8

    tenant.owner.update_user(user["id"], role="Viewer")

    first = client.post(
        "/v1/users", json={"name": "Too Late", "email": "late@example.com", "role": "Owner"}
    )
    assert forbidden(first), first.text
    assert all_forbidden(burst(client, 8, *HARMLESS_WRITE))
    assert statuses(burst(client)) == [200] * 8  # still reads
    assert "late@example.com" not in {u["email"] for u in tenant.owner.users()}


def test_a_key_holder_moved_to_a_role_without_access_is_refused_at_once(tenant: Tenant) -> None:
    user, client = holder(tenant, "Viewer")
    assert statuses(burst(client)) == [200] * 8

    tenant.owner.update_user(user["id"], role="Member")
    assert forbidden(client.get("/v1/users"))
    assert all_forbidden(burst(client))

    tenant.owner.update_user(user["id"], role="Viewer")
    assert statuses(burst(client)) == [200] * 8


def test_every_403_looks_the_same_whatever_the_reason(tenant: Tenant) -> None:
    _, by_subnet = new_key(tenant, allowed_source_ips=["10.0.0.0/8"])
    _, auditor = holder(tenant, "Logs Viewer")
    responses = [by_subnet.get("/v1/users"), auditor.get("/v1/users")]
    assert all_forbidden(responses)
    assert responses[0].content == responses[1].content
    assert "10.0.0.0" not in responses[0].text
    assert "Logs Viewer" not in responses[1].text


def test_a_forged_forwarded_for_header_does_not_change_the_source(tenant: Tenant) -> None:
    _, client = new_key(tenant, allowed_source_ips=["10.0.0.0/8"])
    spoofed = {"X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3", "Forwarded": "for=10.1.2.3"}

    assert forbidden(client.get("/v1/", headers=spoofed))
    seen = tenant.owner.get("/v1/", headers=spoofed, expect=200).json()
    assert seen["account"]["key"]["httpSourceIp"] == "127.0.0.1"
