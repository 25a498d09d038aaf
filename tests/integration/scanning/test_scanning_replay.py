"""A signed secret-scanning report replayed as is is answered without hashing again
(second review, finding G: 60 tokens with a real key id and wrong secrets took 11.5 s,
and the same body replayed 6.6 s again)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from keyledger.adapters.scanreplay import REPLAY_SECONDS, body_digest
from keyledger.bootstrap import Container
from keyledger.domain.events import OPERATOR
from tests.integration.helpers import Bootstrapped, forged
from tests.integration.lifecycle_helpers import GitHubSigner, report
from tests.integration.scanning.conftest import PATH, send


class Counted:
    """The container's hasher, counting verifications (argon2 runs)."""

    def __init__(self, container: Container, monkeypatch: pytest.MonkeyPatch):
        self.runs = 0
        hasher = container.hasher
        verify, verify_any = hasher.verify, hasher.verify_any

        def counted_verify(stored: str, token: str) -> Any:
            self.runs += 1
            return verify(stored, token)

        def counted_any(hashes: Any, token: str) -> Any:
            self.runs += len([h for h in hashes if h])
            return verify_any(hashes, token)

        monkeypatch.setattr(hasher, "verify", counted_verify)
        monkeypatch.setattr(hasher, "verify_any", counted_any)


def test_the_same_signed_report_again_is_answered_without_hashing(
    client: FlaskClient,
    github: GitHubSigner,
    container: Container,
    owner: Bootstrapped,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = [forged(owner.secret_key) for _ in range(5)]  # real key id, wrong secrets
    body = report(*wrong)
    counted = Counted(container, monkeypatch)

    first = send(client, github, body)
    hashed = counted.runs
    again = send(client, github, body)

    assert first.status_code == again.status_code == 200
    assert hashed >= len(wrong)
    assert counted.runs == hashed  # no argon2 for the replay
    assert again.get_json() == first.get_json()
    assert {v["label"] for v in first.get_json()} == {"false_positive"}


def test_a_different_body_is_handled_afresh(
    client: FlaskClient,
    github: GitHubSigner,
    container: Container,
    owner: Bootstrapped,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leaked, _ = container.ledger.create_secret_key(
        owner.account_id, "leaky-key-001", owner.owner_id, (), OPERATOR
    )
    counted = Counted(container, monkeypatch)
    send(client, github, report(forged(owner.secret_key)))
    before = counted.runs

    answer = send(client, github, report(leaked)).get_json()

    assert counted.runs > before
    assert answer[0]["label"] == "true_positive"
    assert "leaky-key-001" not in container.ledger.state(owner.account_id).keys


def test_the_stored_answer_holds_no_token_and_expires(
    client: FlaskClient, github: GitHubSigner, container: Container, owner: Bootstrapped
) -> None:
    token = forged(owner.secret_key)
    body = report(token)
    send(client, github, body)

    key = container.keyspace.scan_answer(body_digest(body))
    stored = container.redis.get(key)

    assert stored is not None and token not in stored and token[5:] not in stored
    assert json.loads(stored) == send(client, github, body).get_json()
    assert 0 < container.redis.ttl(key) <= REPLAY_SECONDS


def test_an_unsigned_replay_is_still_refused(
    client: FlaskClient, github: GitHubSigner, owner: Bootstrapped
) -> None:
    body = report(forged(owner.secret_key))
    assert send(client, github, body).status_code == 200
    assert client.post(PATH, data=body).status_code == 401
