"""Which changes and which requests are revocations (``domain.revocations``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keyledger.domain import events as ev
from keyledger.domain.revocations import is_revocation, revokes

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def event(kind: type[ev.Event], **data: object) -> ev.Event:
    return kind(account_id="a", version=1, time=NOW, actor=ev.OPERATOR, **data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", "/v1/api-keys/victim-key-01", None),
        ("delete", "/v1/api-keys/victim-key-01", None),
        ("DELETE", "/v1/users/5f1c", None),
        ("PUT", "/v1/api-keys/victim-key-01", {"enabled": False}),
    ],
)
def test_these_requests_are_revocations(method: str, path: str, body: object) -> None:
    assert revokes(method, path, body)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/api-keys/victim-key-01", None),  # cannot tell without the body
        ("PUT", "/v1/api-keys/victim-key-01", {"enabled": True}),
        ("PUT", "/v1/api-keys/victim-key-01", {"enabled": 0}),
        ("PUT", "/v1/api-keys/victim-key-01", {"enabled": False, "description": "x"}),
        ("PUT", "/v1/users/5f1c", {"role": "Viewer"}),  # a demotion is a change
        ("DELETE", "/v1/api-keys/victim-key-01/allowed-source-ips", None),
        ("DELETE", "/v1/api-keys", None),
        ("DELETE", "/v1/API-KEYS/victim-key-01", None),
        ("DELETE", "/v1/api-keys/victim-key-01/", None),
        ("POST", "/v1/api-keys/victim-key-01/rotate", {}),
        ("GET", "/v1/api-keys/victim-key-01", None),
    ],
)
def test_these_requests_are_not(method: str, path: str, body: object) -> None:
    assert not revokes(method, path, body)  # type: ignore[arg-type]


def test_a_change_that_only_revokes_is_a_revocation() -> None:
    deleted = event(ev.SecretKeyDeleted, name="k", key_id="00aa", user_id="u", user_name="U")
    removed = event(ev.UserRemoved, user_id="u", user_name="U")
    assert is_revocation([deleted, removed])
    assert is_revocation([event(ev.SecretKeyDisabled, name="k", key_id="00aa")])


def test_a_change_that_also_grants_or_edits_is_not() -> None:
    disabled = event(ev.SecretKeyDisabled, name="k", key_id="00aa")
    described = event(
        ev.SecretKeyDescriptionChanged,
        name="k",
        key_id="00aa",
        description="d",
        previous_description="",
    )
    assert not is_revocation([disabled, described])
    assert not is_revocation([event(ev.SecretKeyEnabled, name="k", key_id="00aa")])
    assert not is_revocation([])
