"""Abuse resistance: the rate limit per account key and the throttle on repeated failures.

Both count in fixed one-minute windows of the web processes' clock (this
machine's). Each check takes a second or two and runs inside one window
(``in_one_minute``): near the end of a minute, it first waits for the next one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import requests

from tests.e2e.client import ApiClient, error_of
from tests.e2e.harness import (
    Stack,
    Tenant,
    WebServer,
    forge,
    in_one_minute,
    key_id_of,
    unique_key_name,
)

pytestmark = pytest.mark.e2e

LIMIT = 6
PER_KEY_FAILURES = 3
PER_SOURCE_FAILURES = 6


@pytest.fixture(scope="module")
def limited(
    redis_url: str, e2e_redis: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, WebServer, WebServer]]:
    """A stack with a small rate limit, and a one-worker server that throttles failures."""
    stack = Stack(redis_url, tmp_path_factory.mktemp("rate_limits"))
    try:
        stack.start_projector()
        rate_limited = stack.start_web(
            "web-rate-limited", KEYLEDGER_RATE_LIMIT_PER_MINUTE=str(LIMIT)
        )
        # One worker: the failure counts live in each process's memory.
        throttling = stack.start_web(
            "web-throttling",
            workers=1,
            KEYLEDGER_AUTH_FAILURES_PER_MINUTE=str(PER_SOURCE_FAILURES),
            KEYLEDGER_AUTH_FAILURES_PER_KEY_MINUTE=str(PER_KEY_FAILURES),
        )
        stack.web = rate_limited
        yield stack, rate_limited, throttling
    finally:
        stack.stop_all()


def until_refused(client: ApiClient, most: int) -> list[requests.Response]:
    """Requests one after the other until the first 429 (or ``most`` of them)."""
    responses: list[requests.Response] = []
    while len(responses) < most:
        responses.append(client.get("/v1/"))
        if responses[-1].status_code == 429:
            break
    return responses


def assert_retry_later(response: requests.Response) -> None:
    assert response.status_code == 429, response.text
    assert error_of(response)["code"] == "too_many_requests"
    assert 1 <= int(response.headers["Retry-After"]) <= 60


@pytest.fixture(scope="module")
def busy(limited: tuple[Stack, WebServer, WebServer]) -> Tenant:
    return limited[0].bootstrap("Busy Bee")


@pytest.fixture(scope="module")
def calm(limited: tuple[Stack, WebServer, WebServer]) -> Tenant:
    return limited[0].bootstrap("Calm Co")


def fresh_allowance(stack: Stack, tenant: Tenant) -> ApiClient:
    """A new account key (so a new, untouched allowance) for the tenant's account."""
    new_key = stack.cli("account-key", "rotate", "--account", tenant.account_id)["accountKey"]
    tenant.account_key, tenant.owner = new_key, tenant.owner.with_keys(new_key, tenant.secret_key)
    return tenant.owner


def test_each_account_key_gets_its_allowance_then_429(
    limited: tuple[Stack, WebServer, WebServer], busy: Tenant
) -> None:
    client = fresh_allowance(limited[0], busy)

    responses = in_one_minute(lambda: until_refused(client, 2 * LIMIT + 2))

    allowed, refused = responses[:-1], responses[-1]
    assert [r.status_code for r in allowed] == [200] * LIMIT
    remaining = [int(r.headers["X-Rate-Limit-Remaining"]) for r in allowed]
    assert remaining == list(range(LIMIT - 1, -1, -1))
    assert_retry_later(refused)


def test_the_allowance_belongs_to_the_account_key_not_the_secret_key(
    limited: tuple[Stack, WebServer, WebServer], busy: Tenant, calm: Tenant
) -> None:
    client = fresh_allowance(limited[0], busy)
    second = busy.client(
        client.create_key(unique_key_name("second"), busy.owner_user_id)["secretKey"]
    )

    def check() -> tuple[requests.Response, requests.Response]:
        assert until_refused(client, 2 * LIMIT + 2)[-1].status_code == 429
        return second.get("/v1/"), calm.owner.get("/v1/")

    same_account, other_account = in_one_minute(check)

    assert_retry_later(same_account)
    assert other_account.status_code == 200


def test_repeated_failures_are_throttled_per_key_then_per_source(
    limited: tuple[Stack, WebServer, WebServer], calm: Tenant
) -> None:
    _, _, throttling = limited
    tenant = calm
    wrong_secret = throttling.client(
        tenant.account_key, forge("klsk", key_id_of(tenant.secret_key))
    )
    bystander = throttling.client(forge("klak"), forge("klsk"))

    def check() -> tuple[list[int], requests.Response, list[int], requests.Response]:
        per_key = [wrong_secret.get("/v1/").status_code for _ in range(PER_KEY_FAILURES)]
        key_throttled = wrong_secret.get("/v1/")
        # Other key ids from the same source: refused normally until the source's limit.
        others = [
            bystander.with_keys(forge("klak"), forge("klsk")).get("/v1/").status_code
            for _ in range(PER_SOURCE_FAILURES - PER_KEY_FAILURES)
        ]
        source_throttled = bystander.get("/v1/")
        return per_key, key_throttled, others, source_throttled

    per_key, key_throttled, others, source_throttled = in_one_minute(check)

    assert per_key == [401] * PER_KEY_FAILURES
    assert_retry_later(key_throttled)
    assert others == [401] * (PER_SOURCE_FAILURES - PER_KEY_FAILURES)
    assert_retry_later(source_throttled)
