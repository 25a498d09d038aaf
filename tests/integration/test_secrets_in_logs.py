"""A key a client sends in the wrong place is never written down (an outside attack on a
live instance got secrets into the logs, the event log and answers these ways).

In process against a real Redis and a running projector, with JSON request logs and one
trusted proxy hop, as an operator might run it. Each test sends a real secret key where
it does not belong and looks for its secret part (the 43 characters after the key id)
in every log record of the request, in the answer, and in the account's event log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest
import redis
from flask.testing import FlaskClient

from keyledger.bootstrap import Container
from keyledger.config import Settings
from keyledger.domain.events import OPERATOR
from keyledger.domain.roles import Role
from keyledger.domain.tokens import readings
from tests.integration.conftest import unlimited
from tests.integration.helpers import Bootstrapped

AK, SK = "x-api-key", "x-api-secret-key"


@pytest.fixture
def settings(redis_url: str, namespace: str) -> Settings:
    return unlimited(
        Settings(
            redis_url=redis_url,
            namespace=namespace,
            partitions=4,
            apply_timeout=5.0,
            log_format="json",
            trusted_proxies=1,
        )
    )


def secret_of(key: str) -> str:
    """The secret part of a key: what must never be written anywhere."""
    return key[21:64]


def key_for(container: Container, owner: Bootstrapped, role: Role) -> str:
    ledger = container.ledger
    user_id, _ = ledger.add_user(
        owner.account_id,
        f"{role.value} user",
        f"{role.name.lower()}@example.com",
        role.value,
        OPERATOR,
    )
    secret, _ = ledger.create_secret_key(
        owner.account_id, f"{role.name.lower()}-key-0001", user_id, (), OPERATOR
    )
    return secret


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def written(records: pytest.LogCaptureFixture) -> str:
    """Every log record of the test as a line would show it: the message and every field."""
    lines = []
    for record in records.records:
        fields = {k: v for k, v in record.__dict__.items() if k not in ("args", "msg")}
        lines.append(record.getMessage() + " " + json.dumps(fields, default=str))
    return "\n".join(lines)


def stored(redis_client: redis.Redis, namespace: str) -> str:
    """Everything Redis holds in the namespace, as text."""
    values = []
    for key in redis_client.scan_iter(match=f"{namespace}:*", count=1000):
        kind = redis_client.type(key)
        if kind == "string":
            values.append(str(redis_client.get(key)))
        elif kind == "hash":
            values.append(str(redis_client.hgetall(key)))
        elif kind == "stream":
            values.append(str(redis_client.xrange(key)))
        elif kind == "set":
            values.append(str(redis_client.smembers(key)))
        elif kind == "zset":
            values.append(str(redis_client.zrange(key, 0, -1)))
        elif kind == "list":
            values.append(str(redis_client.lrange(key, 0, -1)))
    return "\n".join(values)


def assert_nowhere(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text
        assert secret.lower() not in text.lower()


@pytest.mark.parametrize(("role", "method"), [(Role.VIEWER, "DELETE"), (Role.LOGS_VIEWER, "GET")])
def test_a_key_in_the_path_of_a_refused_request_is_not_in_the_reason_logged(
    container: Container,
    client: FlaskClient,
    owner: Bootstrapped,
    records: pytest.LogCaptureFixture,
    role: Role,
    method: str,
) -> None:
    """The role check's reason quotes the method and path ("role 'Viewer' may not ...")."""
    caller = key_for(container, owner, role)
    response = client.open(
        f"/v1/api-keys/{owner.secret_key}",
        method=method,
        headers={AK: owner.account_key, SK: caller},
    )
    assert response.status_code == 403
    assert any(getattr(r, "policy", None) == "role_permits" for r in records.records)
    assert "[redacted-key]" in written(records)
    assert_nowhere(secret_of(owner.secret_key), written(records), response.get_data(as_text=True))


def test_a_key_in_forward_auths_original_uri_is_not_in_the_reason_logged(
    container: Container,
    client: FlaskClient,
    owner: Bootstrapped,
    records: pytest.LogCaptureFixture,
) -> None:
    caller = key_for(container, owner, Role.VIEWER)
    response = client.get(
        "/v1/auth/check",
        headers={
            AK: owner.account_key,
            SK: caller,
            "X-Original-Method": "DELETE",
            "X-Original-URI": f"/orders/{owner.secret_key.upper()}",
        },
    )
    assert response.status_code == 403
    assert_nowhere(secret_of(owner.secret_key), written(records))


def test_a_key_sent_as_the_method_is_not_logged(
    client: FlaskClient, owner: Bootstrapped, records: pytest.LogCaptureFixture
) -> None:
    response = client.open("/v1/", method=owner.secret_key.upper())
    assert response.status_code == 401
    assert any("denied" in r.getMessage() for r in records.records)
    assert_nowhere(secret_of(owner.secret_key), written(records))


@pytest.mark.parametrize(
    "presented",
    ["secret", "key id and secret", "secret, lower case", "key id and secret, upper case"],
)
def test_a_request_id_that_could_hold_a_key_is_replaced(
    redis_client: redis.Redis,
    namespace: str,
    client: FlaskClient,
    owner: Bootstrapped,
    records: pytest.LogCaptureFixture,
    presented: str,
) -> None:
    value = {
        "secret": secret_of(owner.secret_key),
        "key id and secret": owner.secret_key[:64],
        "secret, lower case": secret_of(owner.secret_key).lower(),
        "key id and secret, upper case": owner.secret_key[5:64].upper(),
    }[presented]
    response = client.post(
        "/v1/users",
        headers={AK: owner.account_key, SK: owner.secret_key, "X-Request-Id": value},
        json={"name": "Rid Tester", "email": "rid@example.com", "role": "Viewer"},
    )
    assert response.status_code == 201, response.get_json()
    replaced = response.headers["X-Request-Id"]
    assert replaced != value and len(replaced) == 32
    kept = stored(redis_client, namespace)
    assert replaced in kept  # the change's event names the request id it was given
    assert_nowhere(secret_of(owner.secret_key), written(records), kept)


def test_a_request_id_of_a_usual_shape_is_kept(client: FlaskClient, owner: Bootstrapped) -> None:
    for value in ("0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5bd9cb469fa16570867728950e"):
        response = client.get(
            "/v1/", headers={AK: owner.account_key, SK: owner.secret_key, "X-Request-Id": value}
        )
        assert response.headers["X-Request-Id"] == value


@pytest.mark.parametrize(
    "where",
    ["a key name not found", "a user not found", "an unknown field", "a duplicated field"],
)
def test_an_error_does_not_echo_a_key(client: FlaskClient, owner: Bootstrapped, where: str) -> None:
    key = owner.secret_key
    auth = {AK: owner.account_key, SK: owner.secret_key}
    if where == "a key name not found":
        response = client.get(f"/v1/api-keys/{key}", headers=auth)
        assert response.status_code == 404
    elif where == "a user not found":
        response = client.put(f"/v1/users/{key}", headers=auth, json={"role": "Viewer"})
        assert response.status_code == 404
    elif where == "an unknown field":
        response = client.post("/v1/users", headers=auth, json={key: 1})
        assert response.status_code == 400
    else:
        response = client.post(
            "/v1/users",
            headers={**auth, "Content-Type": "application/json"},
            data=f'{{"{key}": 1, "{key}": 2}}',
        )
        assert response.status_code == 400
    assert "[redacted-key]" in response.get_data(as_text=True)
    assert_nowhere(secret_of(key), response.get_data(as_text=True))


def test_a_forwarded_client_that_is_not_an_address_is_not_taken_as_one(
    redis_client: redis.Redis,
    namespace: str,
    client: FlaskClient,
    owner: Bootstrapped,
    records: pytest.LogCaptureFixture,
) -> None:
    """From a trusted proxy (loopback, by default), with a key as the forwarded client: the
    request is served as one without a client address, and the value is kept nowhere."""
    response = client.post(
        "/v1/users",
        headers={
            AK: owner.account_key,
            SK: owner.secret_key,
            "X-Forwarded-For": owner.secret_key,
        },
        json={"name": "Xff Tester", "email": "xff@example.com", "role": "Viewer"},
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )
    assert response.status_code == 201, response.get_json()
    whoami = client.get("/v1/", headers={AK: owner.account_key, SK: owner.secret_key})
    assert_nowhere(
        secret_of(owner.secret_key),
        written(records),
        stored(redis_client, namespace),
        whoami.get_data(as_text=True),
    )


@pytest.mark.parametrize("field", ["name", "description"])
def test_a_key_pasted_into_a_new_keys_name_or_description_is_refused(
    container: Container,
    redis_client: redis.Redis,
    namespace: str,
    client: FlaskClient,
    owner: Bootstrapped,
    field: str,
) -> None:
    before = container.store.version(owner.account_id)
    body = {"name": "pasted-key-0001", "userId": owner.owner_id, "description": "fine"}
    body[field] = owner.secret_key[:50] if field == "name" else f"ours: {owner.secret_key}"
    response = client.post(
        "/v1/api-keys", headers={AK: owner.account_key, SK: owner.secret_key}, json=body
    )
    assert response.status_code == 400
    assert "holds a keyledger key" in response.get_data(as_text=True)
    assert container.store.version(owner.account_id) == before
    assert_nowhere(secret_of(owner.secret_key)[:29], stored(redis_client, namespace))


@pytest.mark.parametrize(
    "path",
    [
        "/v1?k={key}",
        "/v1//api-keys/{secret}",
        "/v1/api-keys//{secret}",
        "/v1//logs?resourceId={secret}",
    ],
)
def test_a_redirect_never_echoes_a_key(client: FlaskClient, owner: Bootstrapped, path: str) -> None:
    """The router redirects a missing or doubled slash, echoing path and query."""
    key = owner.secret_key
    response = client.get(
        path.format(key=key, secret=secret_of(key)),
        headers={AK: owner.account_key, SK: owner.secret_key},
    )
    assert response.status_code == 404
    assert "Location" not in response.headers
    assert_nowhere(secret_of(key), response.get_data(as_text=True))


def test_an_ordinary_redirect_still_happens(client: FlaskClient, owner: Bootstrapped) -> None:
    response = client.get("/v1", headers={AK: owner.account_key, SK: owner.secret_key})
    assert response.status_code == 308
    assert response.headers["Location"].endswith("/v1/")


def test_a_forwarded_scheme_that_is_not_http_or_https_is_dropped(
    client: FlaskClient, owner: Bootstrapped
) -> None:
    auth = {AK: owner.account_key, SK: owner.secret_key}
    response = client.get("/v1", headers={**auth, "X-Forwarded-Proto": secret_of(owner.secret_key)})
    assert response.headers["Location"].startswith("http://")
    proxied = client.get("/v1", headers={**auth, "X-Forwarded-Proto": "https"})
    assert proxied.headers["Location"].startswith("https://")


def test_a_log_query_for_a_key_is_refused(client: FlaskClient, owner: Bootstrapped) -> None:
    """The resource filter came back in the page's links."""
    for value in (owner.secret_key, secret_of(owner.secret_key)):
        response = client.get(
            f"/v1/logs?offset=1&resourceId={value}",
            headers={AK: owner.account_key, SK: owner.secret_key},
        )
        assert response.status_code == 400
        assert_nowhere(secret_of(owner.secret_key), response.get_data(as_text=True))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/users", {"name": "Vic {secret}", "email": "vic@example.com", "role": "Viewer"}),
        ("/v1/users", {"name": "Vic", "email": "{secret}@example.com", "role": "Viewer"}),
        ("/v1/api-keys", {"name": "k-{secret}", "userId": "{owner}"}),
        (
            "/v1/api-keys",
            {"name": "fine-name-01", "userId": "{owner}", "description": "n {secret}"},
        ),
    ],
)
def test_a_secret_without_its_prefix_is_refused_in_names_and_descriptions(
    container: Container,
    client: FlaskClient,
    owner: Bootstrapped,
    path: str,
    body: dict[str, str],
) -> None:
    before = container.store.version(owner.account_id)
    filled = {
        k: v.format(secret=secret_of(owner.secret_key), owner=owner.owner_id)
        for k, v in body.items()
    }
    response = client.post(path, headers={AK: owner.account_key, SK: owner.secret_key}, json=filled)
    assert response.status_code == 400
    assert container.store.version(owner.account_id) == before
    assert_nowhere(secret_of(owner.secret_key), response.get_data(as_text=True))


@pytest.mark.parametrize("path", ["/v1/api-keys/some-key-0001", "/v1/users"])
def test_a_body_nested_too_deeply_is_a_4xx_without_keys_or_with(
    client: FlaskClient, owner: Bootstrapped, path: str
) -> None:
    """An anonymous PUT of a key's item is read to tell a revocation (its budget): the
    parser's RecursionError escaped as a 500 with a traceback."""
    body = "[" * 60_000
    for headers in ({}, {AK: owner.account_key, SK: owner.secret_key}):
        response = client.put(
            path, data=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500, response.get_data()[:200]


def test_a_fullwidth_key_in_the_path_is_redacted_from_the_request_log(
    client: FlaskClient, owner: Bootstrapped, records: pytest.LogCaptureFixture
) -> None:
    """A server hands the path over as Latin-1 characters of its UTF-8 bytes: read as is,
    a fullwidth key is mojibake that folds to nothing, but decoded it is the key."""
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in owner.secret_key)
    client.get(f"/v1/api-keys/{fullwidth}", headers={AK: owner.account_key, SK: owner.secret_key})
    [logged] = [r for r in records.records if r.name == "keyledger.request"]
    assert getattr(logged, "path", "").endswith("[redacted-key]")
    text = written(records)
    for spelled in readings(text):
        assert secret_of(owner.secret_key) not in spelled


def test_an_answer_quotes_a_long_name_it_accepted(client: FlaskClient, owner: Bootstrapped) -> None:
    """Answers redact what input refuses, not every long run: a name that was accepted
    comes back as it is (the fourth attack found a 409 that said ``[redacted-key]``)."""
    auth = {AK: owner.account_key, SK: owner.secret_key}
    body = {"name": "ProductionBillingServiceReadOnlyKey", "userId": owner.owner_id}
    assert client.post("/v1/api-keys", headers=auth, json=body).status_code == 201
    again = client.post("/v1/api-keys", headers=auth, json=body)
    assert again.status_code == 409
    assert "ProductionBillingServiceReadOnlyKey" in again.get_data(as_text=True)


@pytest.mark.parametrize("folded", [str.lower, str.upper])
def test_a_case_folded_key_is_refused_in_a_description(
    container: Container,
    redis_client: redis.Redis,
    namespace: str,
    client: FlaskClient,
    owner: Bootstrapped,
    folded: Callable[[str], str],
) -> None:
    before = container.store.version(owner.account_id)
    for description in (folded(owner.secret_key[5:]), "klsk: " + folded(owner.secret_key[5:])):
        response = client.post(
            "/v1/api-keys",
            headers={AK: owner.account_key, SK: owner.secret_key},
            json={"name": "folded-key-0001", "userId": owner.owner_id, "description": description},
        )
        assert response.status_code == 400
    assert container.store.version(owner.account_id) == before
    assert_nowhere(secret_of(owner.secret_key), stored(redis_client, namespace))
