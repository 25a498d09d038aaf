"""A key's life through the web app in process, on a real Redis, with a clock the test moves.

Time-based conditions (expiry, a grace period's end) are decided at the request from
the projected record and the clock, so these tests move the container's clock
instead of sleeping.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from keyledger import create_app, history
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from keyledger.domain.events import OPERATOR
from keyledger.domain.mapper import format_time
from keyledger.history import Position
from keyledger.web.extension import KeyLedger, require_api_key
from keyledger.workers.sweeps import Scheduler, Sweeper
from tests.integration.helpers import Bootstrapped
from tests.integration.lifecycle_helpers import Clock

KEY = "ci-deploy-key"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def container(settings: Settings, redis_client: Any, clock: Clock) -> Container:
    """The container of every fixture of this module, on the test's clock, with no ceiling
    on failed verifications: these tests present old secrets on purpose, many a second
    (the ceiling has its own tests in test_hash_floods.py)."""
    throttle = dataclasses.replace(settings.throttle, failed_verifications_per_second=0)
    return build(dataclasses.replace(settings, throttle=throttle), clock=clock)


@pytest.fixture
def client(container: Container) -> Iterator[FlaskClient]:
    app = create_app({"container": container, "TESTING": True})
    with app.test_client() as test_client:
        yield test_client


class Api:
    """The owner's calls, and calls with any secret of the owner's account."""

    def __init__(self, client: FlaskClient, owner: Bootstrapped):
        self.client, self.owner = client, owner

    def headers(self, secret: str | None = None, account_key: str | None = None) -> dict[str, str]:
        return {
            "x-api-key": account_key or self.owner.account_key,
            "x-api-secret-key": secret or self.owner.secret_key,
        }

    def status_with(self, secret: str, account_key: str | None = None) -> int:
        return self.client.get("/v1/", headers=self.headers(secret, account_key)).status_code

    def create(self, name: str = KEY, **fields: Any) -> dict[str, Any]:
        response = self.client.post(
            "/v1/api-keys",
            headers=self.headers(),
            json={"name": name, "userId": self.owner.owner_id, **fields},
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()  # type: ignore[no-any-return]

    def rotate(self, name: str = KEY, **body: Any) -> Any:
        return self.client.post(f"/v1/api-keys/{name}/rotate", headers=self.headers(), json=body)

    def put(self, name: str = KEY, **body: Any) -> Any:
        return self.client.put(f"/v1/api-keys/{name}", headers=self.headers(), json=body)

    def key(self, name: str = KEY) -> dict[str, Any]:
        return self.client.get(f"/v1/api-keys/{name}", headers=self.headers()).get_json()  # type: ignore[no-any-return]

    def events(self) -> list[dict[str, Any]]:
        return self.client.get("/v1/events?limit=1000", headers=self.headers()).get_json()["events"]

    def log(self) -> list[dict[str, Any]]:
        return self.client.get("/v1/logs", headers=self.headers()).get_json()["entries"]  # type: ignore[no-any-return]


@pytest.fixture
def api(client: FlaskClient, owner: Bootstrapped) -> Api:
    return Api(client, owner)


# -- rotation --------------------------------------------------------------------------------
def test_the_previous_secret_works_until_the_grace_ends_and_the_new_one_throughout(
    api: Api, clock: Clock
) -> None:
    old = api.create()["secretKey"]
    rotated = api.rotate(gracePeriodSeconds=600)
    assert rotated.status_code == 200
    new = rotated.get_json()["secretKey"]
    ends = clock.now + timedelta(seconds=600)
    assert rotated.get_json()["previousSecretExpiresTimestamp"] == format_time(ends)

    assert (api.status_with(old), api.status_with(new)) == (200, 200)
    clock.advance(seconds=599)
    assert (api.status_with(old), api.status_with(new)) == (200, 200)
    clock.advance(seconds=1)
    assert (api.status_with(old), api.status_with(new)) == (401, 200)
    assert api.key()["previousSecretExpiresTimestamp"] is None


def test_a_request_with_the_previous_secret_is_told_when_it_stops(api: Api, clock: Clock) -> None:
    old = api.create()["secretKey"]
    new = api.rotate(gracePeriodSeconds=60).get_json()["secretKey"]
    with_old = api.client.get("/v1/", headers=api.headers(old))
    with_new = api.client.get("/v1/", headers=api.headers(new))
    assert with_old.headers["X-Api-Key-Expires"] == format_time(clock.now + timedelta(seconds=60))
    assert "X-Api-Key-Expires" not in with_new.headers


def test_rotating_again_during_a_grace_ends_the_older_grace_at_once(api: Api) -> None:
    first = api.create()["secretKey"]
    second = api.rotate(gracePeriodSeconds=600).get_json()["secretKey"]
    third = api.rotate(gracePeriodSeconds=600).get_json()["secretKey"]
    assert [api.status_with(s) for s in (first, second, third)] == [401, 200, 200]


def test_a_rotation_without_grace_during_a_grace_stops_both_older_secrets(api: Api) -> None:
    first = api.create()["secretKey"]
    second = api.rotate(gracePeriodSeconds=600).get_json()["secretKey"]
    third = api.rotate().get_json()["secretKey"]
    assert [api.status_with(s) for s in (first, second, third)] == [401, 401, 200]
    assert api.key()["previousSecretExpiresTimestamp"] is None


def test_a_rotation_without_grace_stops_the_old_secret_at_once_and_keeps_the_settings(
    api: Api,
) -> None:
    created = api.create(allowedSourceIps=["127.0.0.0/8"], description="CI deploys")
    rotated = api.rotate().get_json()
    assert api.status_with(created["secretKey"]) == 401
    assert api.status_with(rotated["secretKey"]) == 200
    for kept in ("name", "userId", "allowedSourceIps", "description", "createdTimestamp"):
        assert rotated[kept] == created[kept]
    assert rotated["secretKey"] != created["secretKey"]
    assert rotated["secretKey"][5:21] == created["secretKey"][5:21]  # the same key id


def test_a_remembered_success_does_not_outlive_a_rotation(api: Api, container: Container) -> None:
    old = api.create()["secretKey"]
    assert api.status_with(old) == 200  # verified once, remembered in this process
    api.rotate()
    before = container.hasher.argon2_verifications
    assert api.status_with(old) == 401
    assert container.hasher.argon2_verifications > before  # not accepted from memory


def test_the_rotation_is_in_the_system_log_with_the_key_that_made_it(
    api: Api, clock: Clock
) -> None:
    api.create()
    api.rotate(gracePeriodSeconds=3600)
    entry = api.log()[0]
    until = format_time(clock.now + timedelta(hours=1)).replace(".000Z", "Z")
    assert entry["description"] == f'API key "{KEY}" rotated; previous secret valid until {until}'
    assert entry["apiKeyName"] == api.owner.key_name


# -- expiry ----------------------------------------------------------------------------------
def test_a_key_stops_at_its_expiry_whatever_was_recorded(api: Api, clock: Clock) -> None:
    expires = clock.now + timedelta(hours=1)
    secret = api.create(expiresTimestamp=format_time(expires))["secretKey"]
    response = api.client.get("/v1/", headers=api.headers(secret))
    assert response.status_code == 200
    assert response.headers["X-Api-Key-Expires"] == format_time(expires)
    assert api.key()["status"] == "active"
    clock.advance(hours=1)
    assert api.status_with(secret) == 401  # no sweep has run: the clock decides
    assert api.key()["status"] == "expired"


def test_forward_authentication_tells_the_proxy_when_the_key_expires(
    api: Api, clock: Clock
) -> None:
    expires = clock.now + timedelta(days=30)
    secret = api.create(expiresTimestamp=format_time(expires))["secretKey"]
    check = {"X-Original-Method": "GET", "X-Original-URI": "/orders", **api.headers(secret)}
    answer = api.client.get("/v1/auth/check", headers=check)  # the WSGI fast path
    assert answer.status_code == 200
    assert answer.headers["X-Api-Key-Expires"] == format_time(expires)
    assert (
        "X-Api-Key-Expires"
        not in api.client.get("/v1/auth/check", headers={**check, **api.headers()}).headers
    )


def test_the_sweep_records_each_expiry_once_as_keyledger(
    api: Api, clock: Clock, container: Container
) -> None:
    api.create(expiresTimestamp=format_time(clock.now + timedelta(minutes=5)))
    sweeper = Sweeper(container.redis, container.keyspace, container.ledger)
    assert sweeper.run() == {"accounts": 0, "recorded": 0, "failed": 0}  # nothing due yet
    clock.advance(minutes=5, seconds=30)
    assert sweeper.run()["recorded"] == 1
    assert sweeper.run() == {"accounts": 0, "recorded": 0, "failed": 0}  # the index moved on
    expired = [e for e in api.events() if e["type"] == "SecretKeyExpired"]
    assert len(expired) == 1
    assert expired[0]["actor"] == {"kind": "system", "name": "keyledger"}
    entry = api.log()[0]
    assert entry["originator"] == "keyledger" and "apiKeyName" not in entry
    assert entry["description"].startswith(f'API key "{KEY}" expired at ')


def test_a_sweep_while_the_index_lags_records_nothing_twice(
    api: Api, clock: Clock, container: Container
) -> None:
    api.create(expiresTimestamp=format_time(clock.now + timedelta(minutes=1)))
    clock.advance(minutes=2)
    owner = api.owner
    first = container.ledger.record_expiries(owner.account_id, OPERATOR)
    again = container.ledger.record_expiries(owner.account_id, OPERATOR)
    assert len(first.events) == 1 and again.events == ()


def test_the_scheduler_enqueues_one_sweep_at_a_time_and_the_worker_runs_it(
    api: Api,
    clock: Clock,
    container: Container,
    redis_url: str,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue_client = redis.Redis.from_url(redis_url)
    queue = f"keyledger-{namespace}"
    first = Scheduler(container.redis, queue_client, container.keyspace, 30, queue)
    second = Scheduler(container.redis, queue_client, container.keyspace, 30, queue)
    job = first.tick()
    assert job is not None and second.tick() is None  # the lease: one of them enqueues
    container.redis.delete(container.keyspace.sweep_lease())
    assert first.tick() is None  # its sweep is still queued: not a second one
    assert job.kwargs == {"namespace": namespace, "partitions": container.keyspace.partitions}

    api.create(expiresTimestamp=format_time(datetime.now(UTC) + timedelta(seconds=1)))
    time.sleep(1.1)  # the job's container runs on the real clock
    monkeypatch.setenv("REDIS_URL", redis_url)
    rq_queue = Queue(queue, connection=queue_client, serializer=JSONSerializer)
    try:
        SimpleWorker([rq_queue], connection=queue_client, serializer=JSONSerializer).work(
            burst=True
        )
        assert job.get_status(refresh=True) == "finished"
        assert job.return_value() == {"accounts": 1, "recorded": 1, "failed": 0}
        assert [e["type"] for e in api.events()][-1] == "SecretKeyExpired"
    finally:
        rq_queue.delete(delete_jobs=True)


def test_the_end_of_a_grace_is_recorded_too(api: Api, clock: Clock, container: Container) -> None:
    api.create()
    api.rotate(gracePeriodSeconds=60)
    clock.advance(seconds=61)
    Sweeper(container.redis, container.keyspace, container.ledger).run()
    assert "PreviousSecretExpired" in [e["type"] for e in api.events()]
    assert api.log()[0]["description"].startswith(f'Previous secret of API key "{KEY}" expired')


def test_an_expiry_can_be_moved_and_removed(api: Api, clock: Clock) -> None:
    secret = api.create(expiresTimestamp=format_time(clock.now + timedelta(hours=1)))["secretKey"]
    later = clock.now + timedelta(days=2)
    assert api.put(expiresTimestamp=format_time(later)).get_json()["expiresTimestamp"] == (
        format_time(later)
    )
    clock.advance(hours=2)
    assert api.status_with(secret) == 200
    assert api.put(expiresTimestamp=None).get_json()["expiresTimestamp"] is None
    clock.advance(days=3)
    assert api.status_with(secret) == 200


# -- disable, enable, describe -------------------------------------------------------------
def test_a_disabled_key_gets_401_and_enabling_restores_it(api: Api) -> None:
    secret = api.create()["secretKey"]
    assert api.status_with(secret) == 200
    assert api.put(enabled=False).get_json()["status"] == "disabled"
    assert api.status_with(secret) == 401
    assert api.put(enabled=True).get_json()["status"] == "active"
    assert api.status_with(secret) == 200


def test_every_key_shows_its_status_and_lifecycle_fields(api: Api) -> None:
    api.create(description="deploys from CI")
    listed = api.client.get("/v1/api-keys", headers=api.headers()).get_json()["apiKeys"]
    for key in listed:
        assert key["status"] == "active" and key["enabled"] is True
        for name in (
            "expiresTimestamp",
            "previousSecretExpiresTimestamp",
            "lastUsedTimestamp",
            "lastUsedSourceIp",
        ):
            assert name in key
    assert api.key()["description"] == "deploys from CI"


def test_changing_nothing_records_nothing(api: Api) -> None:
    api.create(description="same")
    before = len(api.events())
    assert api.put(description="same", enabled=True).status_code == 200
    assert len(api.events()) == before


# -- last use and stale keys -----------------------------------------------------------------
def test_last_use_appears_after_a_flush_and_never_goes_back(
    api: Api, clock: Clock, container: Container
) -> None:
    secret = api.create()["secretKey"]
    assert api.key()["lastUsedTimestamp"] is None
    used_at = clock.now
    assert api.status_with(secret) == 200
    assert api.key()["lastUsedTimestamp"] is None  # noted in memory only
    container.last_use.flush()
    shown = api.key()
    assert shown["lastUsedTimestamp"] == format_time(used_at)
    assert shown["lastUsedSourceIp"] == "127.0.0.1"

    late = build(container.settings, clock=Clock(used_at - timedelta(hours=1)))
    late.last_use.note([secret[5:21]], "10.9.9.9")  # a slow process writing an older use
    late.last_use.flush()
    assert api.key()["lastUsedTimestamp"] == format_time(used_at)


def test_the_flask_extension_notes_uses_and_tells_when_the_key_expires(
    api: Api, clock: Clock, container: Container
) -> None:
    expires = clock.now + timedelta(days=7)
    secret = api.create(expiresTimestamp=format_time(expires))["secretKey"]
    service = Flask("service")
    extension = KeyLedger(service, container.settings)

    @service.get("/orders")
    @require_api_key
    def orders() -> dict[str, str]:
        return {"ok": "yes"}

    answer = service.test_client().get("/orders", headers=api.headers(secret))
    assert answer.status_code == 200
    assert answer.headers["X-Api-Key-Expires"] == format_time(expires)
    assert extension.container is not None
    assert extension.container.last_use.flush() == 2  # the secret key and the account key
    assert api.key()["lastUsedSourceIp"] == "127.0.0.1"


def test_unused_keys_are_listed_from_their_last_use_or_creation(
    api: Api, clock: Clock, container: Container
) -> None:
    used = api.create("used-key-0001")["secretKey"]
    api.create("never-used-key")
    clock.advance(days=10)
    assert api.status_with(used) == 200
    container.last_use.flush()
    clock.advance(days=85)

    def stale(days: int) -> list[str]:
        response = api.client.get(f"/v1/api-keys?unusedForDays={days}", headers=api.headers())
        return [k["name"] for k in response.get_json()["apiKeys"]]

    # 95 days after the start: the owner's key was last used then (writing), used-key on
    # day 10, never-used-key was created then
    assert stale(85) == ["never-used-key", "owner-key-0001", "used-key-0001"]
    assert stale(86) == ["never-used-key", "owner-key-0001"]
    assert stale(95) == ["never-used-key", "owner-key-0001"]
    assert stale(96) == []


def test_bootstrap_key_last_use_shows_in_whoami(
    api: Api, clock: Clock, container: Container
) -> None:
    assert api.client.get("/v1/", headers=api.headers()).status_code == 200
    container.last_use.flush()
    account_key = api.client.get("/v1/", headers=api.headers()).get_json()["account"]["accountKey"]
    assert account_key["lastUsedTimestamp"] == format_time(clock.now)
    assert account_key["previousKeyExpiresTimestamp"] is None


# -- account key rotation with grace ---------------------------------------------------------
def test_the_previous_account_key_works_until_its_grace_ends(
    api: Api, clock: Clock, container: Container
) -> None:
    owner = api.owner
    new_key, outcome = container.ledger.rotate_account_key(owner.account_id, OPERATOR, 3600)
    assert outcome.in_effect
    assert api.status_with(owner.secret_key, owner.account_key) == 200
    assert api.status_with(owner.secret_key, new_key) == 200
    answer = api.client.get("/v1/", headers=api.headers(owner.secret_key, owner.account_key))
    ends = format_time(clock.now + timedelta(hours=1))
    assert answer.headers["X-Api-Key-Expires"] == ends
    assert answer.get_json()["account"]["accountKey"]["expiresTimestamp"] == ends
    clock.advance(hours=1)
    assert api.status_with(owner.secret_key, owner.account_key) == 401
    assert api.status_with(owner.secret_key, new_key) == 200
    Sweeper(container.redis, container.keyspace, container.ledger).run()
    entry = api.client.get("/v1/logs", headers=api.headers(None, new_key)).get_json()["entries"][0]
    assert entry["description"].startswith("Previous account key expired at ")


# -- replay ---------------------------------------------------------------------------------
def test_the_state_at_a_point_shows_each_key_as_its_life_left_it(
    api: Api, clock: Clock, container: Container
) -> None:
    expires = clock.now + timedelta(days=3)
    api.create(expiresTimestamp=format_time(expires), description="nightly")
    api.rotate(gracePeriodSeconds=60)
    disabled_at = api.put(enabled=False)
    assert disabled_at.status_code == 200
    api.put(enabled=True)
    store, account = container.store, api.owner.account_id
    versions = [int(e["version"]) for e in api.events()]
    then = history.state_body(history.state_at(store, account, Position(version=versions[-2])))
    now = history.state_body(history.state_at(store, account))
    [key_then] = [k for k in then["apiKeys"] if k["name"] == KEY]
    [key_now] = [k for k in now["apiKeys"] if k["name"] == KEY]
    assert key_then["enabled"] is False and key_now["enabled"] is True
    assert key_now["expiresTimestamp"] == format_time(expires)
    assert key_now["previousSecretExpiresTimestamp"] == format_time(
        clock.now + timedelta(seconds=60)
    )
    assert key_now["description"] == "nightly"


# -- viewers ---------------------------------------------------------------------------------
def test_a_viewer_may_change_nothing_of_a_key(
    api: Api, container: Container, owner: Bootstrapped
) -> None:
    ledger = container.ledger
    viewer_id, _ = ledger.add_user(owner.account_id, "Vic", "vic@example.com", "Viewer", OPERATOR)
    secret, _ = ledger.create_secret_key(owner.account_id, "viewer-key-01", viewer_id, (), OPERATOR)
    before = len(api.events())
    as_viewer = api.headers(secret)
    client = api.client
    assert client.put(f"/v1/api-keys/{KEY}x", headers=as_viewer, json={}).status_code == 403
    assert (
        client.put(
            "/v1/api-keys/viewer-key-01", headers=as_viewer, json={"enabled": False}
        ).status_code
        == 403
    )
    assert (
        client.post("/v1/api-keys/viewer-key-01/rotate", headers=as_viewer, json={}).status_code
        == 403
    )
    assert client.get("/v1/api-keys?unusedForDays=1", headers=as_viewer).status_code == 200
    assert len(api.events()) == before
