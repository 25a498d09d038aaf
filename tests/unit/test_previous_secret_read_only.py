"""The previous_secret_read_only policy: a pure function of the facts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from keyledger.policies import engine, previous_secret_read_only
from tests.unit.builders import SECRET_KEY, facts

NOW = 1_800_000_000.0


def with_previous(method: str, path: str):  # type: ignore[no-untyped-def]
    return facts(
        method=method,
        path=path,
        secret_key=replace(SECRET_KEY, previous_expires_at=NOW + 60),
        secret_key_verified=False,
        previous_secret_verified=True,
        now=NOW,
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/api-keys/ci-key-0001/rotate"),
        ("PUT", "/v1/api-keys/ci-key-0001"),
        ("DELETE", "/v1/api-keys/ci-key-0001"),
        ("POST", "/v1/api-keys/ci-key-0001/allowed-source-ips"),
        ("DELETE", "/v1/api-keys/ci-key-0001/allowed-source-ips?cidr=10.0.0.0/8"),
        ("POST", "/v1/api-keys"),
        ("post", "/v1/api-keys/"),
        ("POST", "/v1/API-Keys/ci-key-0001/rotate"),
        ("POST", "/v1//api-keys;x/ci-key-0001/rotate"),
        ("POST", "/v1/users"),
        ("PUT", "/v1/users/abc"),
        ("DELETE", "/v1/users/abc"),
        ("PATCH", "/v1/api-keys/ci-key-0001"),
    ],
)
def test_a_previous_secret_may_not_change_keys_or_users(method: str, path: str) -> None:
    decision = previous_secret_read_only.evaluate(with_previous(method, path))
    assert (decision.allowed, decision.status) == (False, 403)
    assert engine.evaluate(with_previous(method, path)).policy == "previous_secret_read_only"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/api-keys/ci-key-0001"),
        ("HEAD", "/v1/users"),
        ("GET", "/v1/"),
        ("POST", "/v1/orders"),  # a protected service's own path behind forward auth
        ("POST", "/v1/api-keysx"),
    ],
)
def test_a_previous_secret_keeps_the_rest_of_its_rights(method: str, path: str) -> None:
    assert previous_secret_read_only.evaluate(with_previous(method, path)).allowed


def test_the_current_secret_is_not_concerned() -> None:
    current = facts(method="POST", path="/v1/api-keys/ci-key-0001/rotate")
    assert previous_secret_read_only.evaluate(current).allowed


@pytest.mark.parametrize("path", ["/v1/ap\u0131-keys", "/V1/AP\u0131-KEYS/x"])
def test_a_dotless_i_spelling_is_guarded_too(path: str) -> None:
    """A router comparing in upper case reads U+0131 as I (third outside review): the rule
    folds as far, so a previous secret cannot reach /v1/api-keys spelled that way."""
    assert previous_secret_read_only.changes_keys_or_users("POST", path)
