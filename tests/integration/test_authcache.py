"""The per-process authentication cache: hit without Redis, invalidated through pub/sub."""

from __future__ import annotations

import time

import redis

from app.bootstrap import Container
from app.domain.events import OPERATOR
from tests.integration.helpers import bootstrap


def authenticate(container: Container, account_key: str, secret_key: str):
    return container.authenticator.authenticate(
        method="GET",
        path="/v1/",
        source_ip="127.0.0.1",
        account_key=account_key,
        secret_key=secret_key,
    )


def count_redis_fetches(container: Container) -> list[int]:
    lookup = container.authenticator.lookup
    calls = [0]
    original = lookup.fetch_from_redis

    def counting(*args: str):
        calls[0] += 1
        return original(*args)

    lookup.fetch_from_redis = counting  # type: ignore[method-assign]
    return calls


def test_warm_requests_cost_no_redis_lookup_and_no_argon2(container: Container, projector) -> None:
    b = bootstrap(container)
    calls = count_redis_fetches(container)
    assert authenticate(container, b.account_key, b.secret_key).allowed
    argon2 = container.hasher.argon2_verifications
    for _ in range(20):
        assert authenticate(container, b.account_key, b.secret_key).allowed
    assert calls[0] == 1
    assert container.hasher.argon2_verifications == argon2


def test_a_change_invalidates_the_account_at_once(container: Container, projector) -> None:
    b = bootstrap(container)
    user_id, _ = container.ledger.add_user(b.account_id, "Vic", "v@x.io", "Viewer", OPERATOR)
    secret, _ = container.ledger.create_secret_key(
        b.account_id, "viewer-key-01", user_id, (), OPERATOR
    )
    for _ in range(3):
        assert authenticate(container, b.account_key, secret).allowed
    container.ledger.update_user(b.account_id, user_id, None, "Member", OPERATOR)
    result = authenticate(container, b.account_key, secret)
    assert not result.allowed and result.decision.policy == "role_permits"


def test_other_accounts_stay_cached(container: Container, projector) -> None:
    a, b = bootstrap(container, "A"), bootstrap(container, "B")
    authenticate(container, a.account_key, a.secret_key)
    authenticate(container, b.account_key, b.secret_key)
    calls = count_redis_fetches(container)
    container.ledger.disable_api(a.account_id, OPERATOR)
    assert not authenticate(container, a.account_key, a.secret_key).allowed
    assert authenticate(container, b.account_key, b.secret_key).allowed
    assert calls[0] == 1  # only account A was refetched


def test_a_lost_subscription_flushes_the_cache(
    container: Container, projector, redis_client: redis.Redis
) -> None:
    b = bootstrap(container)
    authenticate(container, b.account_key, b.secret_key)
    cache = container.authenticator.lookup.cache
    assert cache is not None
    flushes = cache.flushes
    redis_client.client_kill_filter(_type="pubsub")
    calls = count_redis_fetches(container)
    assert authenticate(container, b.account_key, b.secret_key).allowed
    assert cache.flushes > flushes
    assert calls[0] == 1


def test_liveness_pings_do_not_flush_a_healthy_cache(container: Container, projector) -> None:
    b = bootstrap(container)
    cache = container.authenticator.lookup.cache
    assert cache is not None
    authenticate(container, b.account_key, b.secret_key)
    flushes = cache.flushes
    deadline = time.monotonic() + 2.5  # several PING rounds
    while time.monotonic() < deadline:
        assert authenticate(container, b.account_key, b.secret_key).allowed
        time.sleep(0.01)
    assert cache.flushes == flushes
