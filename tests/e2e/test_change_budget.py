"""The per-account budget of changes, through gunicorn's two workers and a real projector.

The count lives in Redis and runs on its clock, so every worker refuses once the
account has spent it; the operator's command line is never refused.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from tests.e2e.client import error_of
from tests.e2e.harness import Stack, WebServer

pytestmark = pytest.mark.e2e

BUDGET = 4
MARGIN = 15


@pytest.fixture(scope="module")
def budgeted(
    redis_url: str, e2e_redis: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, WebServer]]:
    stack = Stack(redis_url, tmp_path_factory.mktemp("change_budget"))
    try:
        stack.start_projector()
        stack.web = stack.start_web("web-budget", KEYLEDGER_CHANGES_PER_MINUTE=str(BUDGET))
        yield stack, stack.web
    finally:
        stack.stop_all()


def fresh_window(client: redis.Redis) -> None:
    """Wait, if needed, until a minute of Redis's clock has ``MARGIN`` seconds left."""
    seconds, _ = client.time()
    if seconds % 60 > 60 - MARGIN:
        time.sleep(60 - seconds % 60 + 0.05)


def test_every_worker_refuses_a_change_past_the_budget_and_the_operator_still_acts(
    budgeted: tuple[Stack, WebServer], e2e_redis: redis.Redis
) -> None:
    stack, web = budgeted
    tenant = stack.bootstrap("Budget Co")  # the operator's changes: not counted
    fresh_window(e2e_redis)
    for n in range(BUDGET):
        tenant.owner.add_user(f"Teammate {n}", role="Viewer")
    events = tenant.owner.event_count()

    def late(n: int) -> requests.Response:
        body = {"name": f"Late {n}", "email": f"late{n}@x.io", "role": "Viewer"}
        return tenant.owner.post("/v1/users", json=body)

    workers: set[str] = set()
    with ThreadPoolExecutor(max_workers=4) as pool:
        for burst in range(20):  # concurrent requests, until both workers have answered
            responses = list(pool.map(late, range(burst * 8, burst * 8 + 8)))
            for response in responses:
                assert response.status_code == 429, response.text
                assert error_of(response)["code"] == "too_many_changes"
                assert 1 <= int(response.headers["Retry-After"]) <= 60
            ids = [r.headers["X-Request-Id"] for r in responses]
            workers.update(web.worker_of(ids).values())
            if len(workers) == 2:
                break
    assert len(workers) == 2, f"only worker {workers} answered"
    assert tenant.owner.event_count() == events  # nothing written

    disabled = stack.cli("api", "disable", "--account", tenant.account_id)
    assert disabled["apiEnabled"] is False
