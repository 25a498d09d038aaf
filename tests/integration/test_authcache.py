"""The per-process authentication cache: hit without Redis, invalidated through pub/sub."""

from __future__ import annotations

import time

import redis

from keyledger.adapters.authcache import PONG_TIMEOUT
from keyledger.bootstrap import Container
from keyledger.domain.events import OPERATOR
from tests.integration.helpers import bootstrap


def authenticate(container: Container, account_key: str, secret_key: str):
    return container.authenticator.authenticate(
        method="GET",
        path="/v1/",
        source_ip="127.0.0.1",
        account_key=account_key,
        secret_key=secret_key,
    )


def subscribed(container: Container) -> None:
    assert container.auth_cache.wait_until_subscribed()


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
    subscribed(container)
    calls = count_redis_fetches(container)
    assert authenticate(container, b.account_key, b.secret_key).allowed
    argon2 = container.hasher.argon2_verifications
    for _ in range(20):
        assert authenticate(container, b.account_key, b.secret_key).allowed
    assert calls[0] == 1
    assert container.hasher.argon2_verifications == argon2


def test_a_change_invalidates_the_account_at_once(container: Container, projector) -> None:
    b = bootstrap(container)
    subscribed(container)
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
    subscribed(container)
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
    subscribed(container)
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
    subscribed(container)
    cache = container.authenticator.lookup.cache
    assert cache is not None
    authenticate(container, b.account_key, b.secret_key)
    flushes = cache.flushes
    deadline = time.monotonic() + 2.5  # several PING rounds
    while time.monotonic() < deadline:
        assert authenticate(container, b.account_key, b.secret_key).allowed
        time.sleep(0.01)
    assert cache.flushes == flushes


def test_a_pong_answered_while_no_request_came_is_not_taken_for_silence(
    container: Container, projector
) -> None:
    """A worker that sent its PING and then had no request for over PONG_TIMEOUT found
    the PONG in its socket: it is read before the timeout is judged (no flush)."""
    b = bootstrap(container)
    subscribed(container)
    cache = container.authenticator.lookup.cache
    assert cache is not None
    authenticate(container, b.account_key, b.secret_key)
    cache._next_ping = 0.0  # a PING is due: the next request sends it
    authenticate(container, b.account_key, b.secret_key)
    assert any(held.awaiting_pong is not None for held in cache._subscriptions or [])
    flushes = cache.flushes
    time.sleep(PONG_TIMEOUT + 0.3)  # no request meanwhile; the PONG waits in the socket
    assert authenticate(container, b.account_key, b.secret_key).allowed
    assert cache.flushes == flushes


def test_a_lookup_read_before_an_invalidation_is_not_cached(
    container: Container, projector
) -> None:
    """Thread A reads the records, a change is applied and drained by thread B, then A
    would cache what it read: the epoch check refuses it."""
    b = bootstrap(container)
    subscribed(container)
    cache, lookup = container.auth_cache, container.authenticator.lookup
    pair = (b.account_key[5:21], b.secret_key[5:21])
    epoch = cache.sync()
    assert epoch is not None
    before = lookup.fetch_from_redis(*pair)  # thread A's read
    container.ledger.delete_secret_key(b.account_id, b.key_name, OPERATOR)
    assert cache.sync() is not None  # thread B drains the invalidation
    cache.put(pair, before, epoch)  # thread A, late
    assert cache.get(pair) is None
    assert not authenticate(container, b.account_key, b.secret_key).allowed


def test_account_state_read_before_a_change_is_not_trusted(container: Container, projector) -> None:
    b = bootstrap(container)
    subscribed(container)
    repo, store = container.ledger.accounts, container.store
    original = store.iter_account
    raced = []

    def racing_read(*args, **kwargs):  # type: ignore[no-untyped-def]
        events = list(original(*args, **kwargs))  # thread A has read the history...
        if not raced:
            raced.append(True)
            container.ledger.delete_secret_key(b.account_id, b.key_name, OPERATOR)
            container.auth_cache.sync()  # ...and thread B drains the announcement
        return iter(events)

    store.iter_account = racing_read  # type: ignore[method-assign]
    repo._clean.discard(b.account_id)
    repo.load(b.account_id, fresh=False)
    store.iter_account = original  # type: ignore[method-assign]
    assert b.key_name not in container.ledger.state(b.account_id).keys
