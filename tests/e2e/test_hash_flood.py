"""A flood of forged keys against two web workers (issue 7, finding 3).

The review's flood came from 240 IPv6 /64s, so no per-source limit applied and
each refusal cost an argon2 verification. Here keyledger trusts its local
proxy (``X-Forwarded-For`` from 127.0.0.1), so every flood request comes from
its own network; what stops it is the ceiling on failed verifications per
second and process. A legitimate key both workers have verified keeps getting
200 throughout. The number of argon2 computations is counted in process by
tests/integration/test_hash_floods.py; here the bound shows as the number of
401s, each of which cost one.
"""

from __future__ import annotations

import http.client
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.harness import (
    Stack,
    Tenant,
    WebServer,
    answered_by_every_worker,
    forge,
    in_one_minute,
    key_id_of,
)

pytestmark = pytest.mark.e2e

WORKERS = 2
CEILING = 2  # failed verifications per second and process
PER_KEY = 3  # failures per source and key id and minute
FLOOD = 150


def two_workers(stack: Stack, name: str, **env: str) -> WebServer:
    """Two workers behind a trusted local proxy, counting failures as configured."""
    return stack.start_web(
        name,
        workers=WORKERS,
        KEYLEDGER_TRUSTED_PROXIES="1",
        KEYLEDGER_AUTH_FAILURES_PER_MINUTE="60",
        KEYLEDGER_AUTH_FAILURES_PER_KEY_MINUTE=str(PER_KEY),
        **env,
    )


@pytest.fixture(scope="module")
def guarded(stack: Stack) -> WebServer:
    return two_workers(stack, "web-guarded", KEYLEDGER_FAILED_VERIFICATIONS_PER_SECOND=str(CEILING))


@pytest.fixture(scope="module")
def shared(stack: Stack) -> WebServer:
    """No ceiling: only the counts the workers share decide."""
    return two_workers(stack, "web-shared")


def forged(tenant: Tenant, n: int) -> tuple[str, str]:
    """Valid checksums all: a wrong secret for a real key, an unknown key id, no real key."""
    return [
        (tenant.account_key, forge("klsk", key_id_of(tenant.secret_key))),
        (tenant.account_key, forge("klsk")),
        (forge("klak"), forge("klsk")),
    ][n % 3]


def test_a_flood_from_many_networks_is_bounded_and_a_warm_key_keeps_its_200(
    guarded: WebServer, tenant: Tenant
) -> None:
    legit = guarded.client(tenant.account_key, tenant.secret_key)
    # No more first verifications at once than the ceiling's tokens: a threaded worker
    # verifies concurrent first requests in parallel, and each holds a token meanwhile.
    answered_by_every_worker(guarded, legit, 200, WORKERS, concurrency=CEILING)

    def send(n: int) -> tuple[str, int]:
        if n % 10 == 0:
            return "legit", legit.get("/v1/").status_code
        account_key, secret_key = forged(tenant, n)
        attacker = guarded.client(account_key, secret_key)
        return "flood", attacker.get("/v1/", headers={"X-Forwarded-For": f"10.{n}.7.1"}).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(send, range(FLOOD)))
    elapsed = time.monotonic() - started

    legit_answers = [status for who, status in answers if who == "legit"]
    flood_answers = [status for who, status in answers if who == "flood"]
    assert legit_answers == [200] * len(legit_answers)
    assert set(flood_answers) <= {401, 429}
    assert 429 in flood_answers
    # Each 401 cost one argon2; each process's bucket holds CEILING tokens and refills
    # CEILING per second, so no more than this many could be spent in the time it took.
    assert flood_answers.count(401) <= WORKERS * CEILING * (1 + elapsed)


def test_failures_count_across_workers(shared: WebServer, tenant: Tenant) -> None:
    """Wrong secrets for one key from one source: the limit holds whichever worker answers."""
    wrong = shared.client(tenant.account_key, forge("klsk", key_id_of(tenant.secret_key)))
    source = {"X-Forwarded-For": "198.51.100.77"}

    def check() -> list[int]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            first = list(pool.map(lambda _: wrong.get("/v1/", headers=source), range(PER_KEY)))
        then = [wrong.get("/v1/", headers=source) for _ in range(4)]
        return [r.status_code for r in first + then]

    assert in_one_minute(check) == [401] * PER_KEY + [429] * 4


def from_another_address(web: WebServer, headers: dict[str, str]) -> int:
    """GET /v1/ over a socket bound to 127.0.0.2: a peer that is not the trusted proxy."""
    host, port = web.url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(
        host, int(port), timeout=15, source_address=("127.0.0.2", 0)
    )
    try:
        connection.request("GET", "/v1/", headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def test_rotating_x_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_throttle(
    shared: WebServer, tenant: Tenant
) -> None:
    """Issue 7, finding 2: the header is not believed from this peer, so every request
    counts against the peer's own address."""
    wrong = forge("klsk", key_id_of(tenant.secret_key))

    def check() -> list[int]:
        return [
            from_another_address(
                shared,
                {
                    "x-api-key": tenant.account_key,
                    "x-api-secret-key": wrong,
                    "X-Forwarded-For": f"203.0.{n}.9",
                },
            )
            for n in range(PER_KEY + 3)
        ]

    assert in_one_minute(check) == [401] * PER_KEY + [429] * 3
