"""Idempotency-Key on POST: a retry returns the first result and records nothing new."""

from __future__ import annotations

import redis
from flask.testing import FlaskClient

from keyledger.bootstrap import Container
from keyledger.domain.events import OPERATOR
from tests.integration.helpers import Bootstrapped


def post_key(client: FlaskClient, b: Bootstrapped, idem: str | None, name: str = "retried-key-01"):
    headers = {"x-api-key": b.account_key, "x-api-secret-key": b.secret_key}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return client.post("/v1/api-keys", headers=headers, json={"name": name, "userId": b.owner_id})


def test_a_retried_key_creation_returns_the_first_key_and_mints_no_second(
    client: FlaskClient, owner: Bootstrapped, container: Container
) -> None:
    first = post_key(client, owner, "create-key-7f3a")
    version = container.store.version(owner.account_id)
    again = post_key(client, owner, "create-key-7f3a")
    assert first.status_code == again.status_code == 201
    assert again.get_json()["secretKey"] == first.get_json()["secretKey"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert container.store.version(owner.account_id) == version


def test_the_stored_result_is_not_readable_in_redis(
    client: FlaskClient, owner: Bootstrapped, redis_client: redis.Redis, namespace: str
) -> None:
    secret = post_key(client, owner, "create-key-7f3a").get_json()["secretKey"]
    secret_part = secret[5 + 16 : 5 + 16 + 43]
    for key in redis_client.scan_iter(match=f"{namespace}:*:idem:*"):
        assert secret_part not in redis_client.get(key)


def test_the_same_key_for_a_different_request_is_refused(
    client: FlaskClient, owner: Bootstrapped
) -> None:
    post_key(client, owner, "create-key-7f3a")
    other = post_key(client, owner, "create-key-7f3a", name="another-key-01")
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"


def test_a_failed_request_can_be_retried_with_the_same_key(
    client: FlaskClient, owner: Bootstrapped
) -> None:
    assert post_key(client, owner, "k-1", name="bad").status_code == 400
    assert post_key(client, owner, "k-2").status_code == 201
    # k-1 was released after the failure: a corrected request may not reuse it
    # with a different body, but the identical request runs again.
    again = post_key(client, owner, "k-1", name="bad")
    assert again.status_code == 400
    assert "Idempotent-Replayed" not in again.headers


def test_a_refused_request_is_not_kept_and_runs_again_once_it_can_succeed(
    client: FlaskClient, owner: Bootstrapped, container: Container
) -> None:
    assert post_key(client, owner, None, name="contested-key-1").status_code == 201
    refused = post_key(client, owner, "k-409", name="contested-key-1")
    assert refused.status_code == 409  # the name is taken: refused, nothing recorded
    assert "Idempotent-Replayed" not in refused.headers
    headers = {"x-api-key": owner.account_key, "x-api-secret-key": owner.secret_key}
    assert client.delete("/v1/api-keys/contested-key-1", headers=headers).status_code == 204
    version = container.store.version(owner.account_id)
    retried = post_key(client, owner, "k-409", name="contested-key-1")
    assert retried.status_code == 201, retried.get_json()  # run again, not the 409 replayed
    assert "Idempotent-Replayed" not in retried.headers
    assert retried.get_json()["secretKey"].startswith("klsk_")
    assert container.store.version(owner.account_id) == version + 1


def test_another_callers_key_does_not_see_the_result(
    client: FlaskClient, owner: Bootstrapped, container: Container
) -> None:
    secret, _ = container.ledger.create_secret_key(
        owner.account_id, "second-owner-key", owner.owner_id, (), OPERATOR
    )
    post_key(client, owner, "shared-idem")
    other = Bootstrapped(owner.account_id, owner.owner_id, owner.account_key, secret)
    response = post_key(client, other, "shared-idem")
    assert response.status_code == 409  # the key name exists; it ran as a new request


def test_malformed_idempotency_keys_are_400(client: FlaskClient, owner: Bootstrapped) -> None:
    assert post_key(client, owner, "x" * 256).status_code == 400
    assert post_key(client, owner, "has space").status_code == 400


def test_without_the_header_every_post_runs(client: FlaskClient, owner: Bootstrapped) -> None:
    assert post_key(client, owner, None).status_code == 201
    assert post_key(client, owner, None).status_code == 409


def test_a_change_recorded_before_redis_failed_is_202_and_replayable(
    client: FlaskClient, owner: Bootstrapped, container: Container
) -> None:
    from keyledger.domain.errors import StoreUnavailable

    watch = container.ledger.watch
    real_wait = watch.wait

    def failing_wait(*args: object, **kwargs: object) -> bool:
        raise StoreUnavailable("storage unavailable: TimeoutError")

    watch.wait = failing_wait  # type: ignore[method-assign]
    first = post_key(client, owner, "after-a-blip")
    watch.wait = real_wait  # type: ignore[method-assign]
    assert first.status_code == 202
    secret = first.get_json()["secretKey"]
    again = post_key(client, owner, "after-a-blip")
    assert again.status_code == 202 and again.get_json()["secretKey"] == secret


def test_a_retry_while_the_first_request_holds_its_lease_is_told_to_wait(
    client: FlaskClient, owner: Bootstrapped, container: Container
) -> None:
    from keyledger.adapters.idempotency import IdempotencyStore

    store = IdempotencyStore(container.redis, container.keyspace)
    record = store.record_key(owner.account_id, owner.secret_key[5:21], "slow-first")
    with client.application.test_request_context(
        "/v1/api-keys", method="POST", json={"name": "retried-key-01", "userId": owner.owner_id}
    ):
        from keyledger.web.idempotency import fingerprint

        print_ = fingerprint()
    store.reserve(record, print_)  # a first request that has not reached its change yet
    response = post_key(client, owner, "slow-first")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "idempotency_in_progress"


def test_a_request_past_its_lease_changes_nothing_and_its_retry_runs(
    client: FlaskClient, owner: Bootstrapped, container: Container, monkeypatch
) -> None:
    """The append script refuses a change whose reservation's lease ran out (a retry may
    already be running it); once lease and margin are over, a retry takes over."""
    from keyledger.adapters import idempotency

    monkeypatch.setattr(idempotency, "LEASE_MS", 0)
    monkeypatch.setattr(idempotency, "LEASE_MARGIN_MS", 0)
    version = container.store.version(owner.account_id)
    late = post_key(client, owner, "late-one")
    assert late.status_code == 503
    assert late.get_json()["error"]["code"] == "request_expired"
    assert container.store.version(owner.account_id) == version  # nothing written
    monkeypatch.setattr(idempotency, "LEASE_MS", 15_000)
    retried = post_key(client, owner, "late-one")
    assert retried.status_code == 201
    assert container.store.version(owner.account_id) == version + 1


def test_the_result_is_kept_with_the_change_even_when_keeping_it_after_fails(
    client: FlaskClient, owner: Bootstrapped, container: Container, monkeypatch
) -> None:
    """The append script writes the change and its sealed result together: a server that
    fails right after the change still leaves the first result for the retry."""
    from keyledger.adapters.idempotency import IdempotencyStore
    from keyledger.domain.errors import StoreUnavailable

    def failing(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("storage unavailable: ConnectionError")

    monkeypatch.setattr(IdempotencyStore, "complete", failing)
    first = post_key(client, owner, "kept-with-change")
    assert first.status_code == 201
    monkeypatch.undo()
    version = container.store.version(owner.account_id)
    again = post_key(client, owner, "kept-with-change")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["secretKey"] == first.get_json()["secretKey"]
    assert container.store.version(owner.account_id) == version


def test_deletes_and_updates_take_an_idempotency_key_too(
    client: FlaskClient, owner: Bootstrapped
) -> None:
    headers = {"x-api-key": owner.account_key, "x-api-secret-key": owner.secret_key}
    assert post_key(client, owner, None, name="doomed-key-01").status_code == 201
    once = {**headers, "Idempotency-Key": "delete-doomed"}
    first = client.delete("/v1/api-keys/doomed-key-01", headers=once)
    again = client.delete("/v1/api-keys/doomed-key-01", headers=once)
    assert first.status_code == again.status_code == 204
    assert again.headers["Idempotent-Replayed"] == "true"
    assert client.delete("/v1/api-keys/doomed-key-01", headers=headers).status_code == 404
