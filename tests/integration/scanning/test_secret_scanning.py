"""GitHub's secret scanning partner endpoint in process, on a real Redis and projector.

The test plays GitHub: it makes a P-256 key pair, publishes the public key in a
keys file and signs each report's raw body.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from keyledger import create_app
from keyledger.bootstrap import Container, build
from keyledger.cli import main
from keyledger.config import ConfigError, Settings
from keyledger.domain.events import OPERATOR
from keyledger.domain.tokens import KeyKind, checksum, generate
from keyledger.web.errors import UNAUTHENTICATED
from tests.integration.helpers import Bootstrapped
from tests.integration.lifecycle_helpers import GitHubSigner, report
from tests.integration.scanning.conftest import PATH, send


def events(container: Container, owner: Bootstrapped) -> list[str]:
    return [s.record["type"] for s in container.store.iter_account(owner.account_id)]


def auth(
    owner: Bootstrapped, secret: str | None = None, account_key: str | None = None
) -> dict[str, str]:
    return {
        "x-api-key": account_key or owner.account_key,
        "x-api-secret-key": secret or owner.secret_key,
    }


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_a_leaked_secret_key_is_revoked_and_the_answer_never_echoes_it(
    client: FlaskClient, github: GitHubSigner, container: Container, owner: Bootstrapped
) -> None:
    leaked, _ = container.ledger.create_secret_key(
        owner.account_id, "leaky-key-001", owner.owner_id, (), OPERATOR
    )
    assert client.get("/v1/", headers=auth(owner, leaked)).status_code == 200

    response = send(client, github, report(leaked))

    assert response.status_code == 200
    assert response.get_json() == [
        {"token_hash": sha(leaked), "token_type": "keyledger_secret_key", "label": "true_positive"}
    ]
    assert leaked not in response.get_data(as_text=True)
    assert client.get("/v1/", headers=auth(owner, leaked)).status_code == 401
    revoked = container.store.read_account(owner.account_id)[-1]
    assert revoked.record["type"] == "SecretKeyRevoked"
    assert json.loads(revoked.record["actor"]) == {"kind": "system", "name": "secret scanning"}
    data = json.loads(revoked.record["data"])
    assert data["reason"] == "leaked" and data["url"].startswith("https://github.com/")
    entry = client.get("/v1/logs", headers=auth(owner)).get_json()["entries"][0]
    assert entry["originator"] == "secret scanning"
    assert entry["description"].startswith('API key "leaky-key-001" of user "Ann Owner" revoked')


def test_a_repeated_report_is_a_true_positive_again_and_records_nothing(
    client: FlaskClient, github: GitHubSigner, container: Container, owner: Bootstrapped
) -> None:
    leaked, _ = container.ledger.create_secret_key(
        owner.account_id, "leaky-key-002", owner.owner_id, (), OPERATOR
    )
    first = send(client, github, report(leaked, leaked)).get_json()
    recorded = events(container, owner)
    again = send(client, github, report(leaked)).get_json()
    assert first == [first[0], first[0]] and again == [first[0]]
    assert first[0]["label"] == "true_positive"
    assert events(container, owner) == recorded
    assert recorded.count("SecretKeyRevoked") == 1


def test_unknown_tokens_are_false_positives_and_change_nothing(
    client: FlaskClient, github: GitHubSigner, container: Container, owner: Bootstrapped
) -> None:
    forged = generate(KeyKind.SECRET, 0).token  # well formed, never issued
    body = owner.secret_key[:21] + generate(KeyKind.SECRET, 0).token[21:64]
    wrong_secret = body + checksum(body)  # the owner's key id with another secret
    before = events(container, owner)
    answer = send(client, github, report("ghp_notours", forged, wrong_secret)).get_json()
    assert [(a["token_type"], a["label"]) for a in answer] == [
        ("unknown", "false_positive"),
        ("keyledger_secret_key", "false_positive"),
        ("keyledger_secret_key", "false_positive"),
    ]
    assert events(container, owner) == before
    assert client.get("/v1/", headers=auth(owner)).status_code == 200


def test_a_leaked_previous_secret_loses_its_grace_but_the_new_secret_works(
    client: FlaskClient, github: GitHubSigner, container: Container, owner: Bootstrapped
) -> None:
    ledger = container.ledger
    old, _ = ledger.create_secret_key(
        owner.account_id, "rotated-key-1", owner.owner_id, (), OPERATOR
    )
    new, _ = ledger.rotate_secret_key(owner.account_id, "rotated-key-1", 3600, OPERATOR)
    assert client.get("/v1/", headers=auth(owner, old)).status_code == 200

    first = send(client, github, report(old)).get_json()
    again = send(client, github, report(old)).get_json()

    assert first == again and first[0]["label"] == "true_positive"
    assert client.get("/v1/", headers=auth(owner, old)).status_code == 401
    assert client.get("/v1/", headers=auth(owner, new)).status_code == 200
    assert events(container, owner).count("PreviousSecretRevoked") == 1


def test_a_leaked_account_key_is_recorded_not_revoked_and_shown_by_status(
    client: FlaskClient,
    github: GitHubSigner,
    container: Container,
    owner: Bootstrapped,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = send(client, github, report(owner.account_key)).get_json()
    again = send(client, github, report(owner.account_key)).get_json()
    assert (
        first
        == again
        == [
            {
                "token_hash": sha(owner.account_key),
                "token_type": "keyledger_account_key",
                "label": "true_positive",
            }
        ]
    )
    assert events(container, owner).count("AccountKeyReportedLeaked") == 1
    assert client.get("/v1/", headers=auth(owner)).status_code == 200  # still works

    settings = container.settings
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("KEYLEDGER_NAMESPACE", settings.namespace)
    monkeypatch.setenv("KEYLEDGER_PARTITIONS", str(settings.partitions))
    shown = CliRunner().invoke(main, ["status", "--json"])
    leaks = json.loads(shown.output)["leakedAccountKeys"]
    assert [leak["accountId"] for leak in leaks] == [owner.account_id]

    container.ledger.rotate_account_key(owner.account_id, OPERATOR)  # the operator acts
    shown = CliRunner().invoke(main, ["status", "--json"])
    assert json.loads(shown.output)["leakedAccountKeys"] == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"Github-Public-Key-Signature": ""}, "required"),
        ({"Github-Public-Key-Identifier": "someone-else"}, "unknown Github-Public-Key-Identifier"),
        ({"Github-Public-Key-Signature": "bm90IGEgc2lnbmF0dXJl"}, "does not verify"),
        ({"Github-Public-Key-Signature": "%%%"}, "does not verify"),
    ],
)
def test_a_missing_bad_or_foreign_signature_is_401_and_changes_nothing(
    client: FlaskClient,
    github: GitHubSigner,
    container: Container,
    owner: Bootstrapped,
    change: dict[str, str],
    expected: str,
) -> None:
    before = events(container, owner)
    response = send(client, github, report(owner.secret_key), **change)
    assert response.status_code == 401
    assert expected in response.get_json()["error"]["description"]
    assert events(container, owner) == before
    assert client.get("/v1/", headers=auth(owner)).status_code == 200


def test_a_signature_over_other_bytes_is_refused(
    client: FlaskClient, github: GitHubSigner, owner: Bootstrapped
) -> None:
    signed = report(owner.secret_key)
    reserialised = json.dumps(json.loads(signed), indent=2).encode()  # same JSON, other bytes
    response = client.post(PATH, data=reserialised, headers=github.headers(signed))
    assert response.status_code == 401
    assert client.get("/v1/", headers=auth(owner)).status_code == 200


def test_a_key_of_another_signer_is_refused(client: FlaskClient, owner: Bootstrapped) -> None:
    impostor = GitHubSigner()  # same identifier, a key nobody published
    body = report(owner.secret_key)
    assert client.post(PATH, data=body, headers=impostor.headers(body)).status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"x" * (1024 * 1024 + 1), 413),
        (json.dumps([{"token": f"t{i}"} for i in range(1001)]).encode(), 413),
        (b"{not json", 400),
        (b'{"token": "x"}', 400),
        (b'[{"url": "https://x"}]', 400),
        (b'[{"token": 7}]', 400),
        (b'[{"token": "x", "url": 7}]', 400),
        (b"[1]", 400),
    ],
)
def test_oversized_or_malformed_reports_are_refused_and_change_nothing(
    client: FlaskClient,
    github: GitHubSigner,
    container: Container,
    owner: Bootstrapped,
    body: bytes,
    status: int,
) -> None:
    before = events(container, owner)
    response = send(client, github, body)
    assert response.status_code == status, response.get_json()
    assert set(response.get_json()) == {"error"}
    assert events(container, owner) == before


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        (
            "https://github.com/o/r/blob/main/a\u202eb.env",
            "https://github.com/o/r/blob/main/a%E2%80%AEb.env",
        ),
        ("https://github.com/o/r/x\u200by\nz", "https://github.com/o/r/x%E2%80%8By%0Az"),
        ("https://github.com/o/r/\u3164.env", "https://github.com/o/r/%E3%85%A4.env"),
        ("https://github.com/" + "p" * 3000, "https://github.com/" + "p" * (2048 - 19)),
    ],
)
def test_a_leak_is_revoked_whatever_its_url_holds(
    client: FlaskClient,
    github: GitHubSigner,
    container: Container,
    owner: Bootstrapped,
    url: str,
    kept: str,
) -> None:
    """A signed report is never refused for its URL: refused (400), its key stayed live.
    What a text field may not hold is percent-encoded, and the URL cut at 2,048."""
    leaked, _ = container.ledger.create_secret_key(
        owner.account_id, "leaky-key-002", owner.owner_id, (), OPERATOR
    )
    body = json.dumps(
        [{"token": leaked, "type": "x\u202e", "url": url, "source": "a" * 5000}]
    ).encode()
    response = send(client, github, body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()[0]["label"] == "true_positive"
    assert client.get("/v1/", headers=auth(owner, leaked)).status_code == 401
    revoked = container.store.read_account(owner.account_id)[-1]
    assert json.loads(revoked.record["data"])["url"] == kept


def test_a_report_of_a_megabyte_is_accepted(
    client: FlaskClient, github: GitHubSigner, owner: Bootstrapped
) -> None:
    body = report(*[f"ghp_{i:060d}" for i in range(1000)])
    assert 64 * 1024 < len(body) <= 1024 * 1024  # beyond the API's 64 KiB body limit
    response = send(client, github, body)
    assert response.status_code == 200
    assert len(response.get_json()) == 1000


def test_without_a_keys_file_the_endpoint_is_404(settings: Settings, owner: Bootstrapped) -> None:
    app = create_app({"container": build(settings), "TESTING": True})
    body = report(owner.secret_key)
    response = app.test_client().post(PATH, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 404


def test_the_endpoint_takes_no_api_keys_and_grants_nothing(
    client: FlaskClient, owner: Bootstrapped
) -> None:
    """Keys sent to it do not authenticate anything: it answers on the signature alone."""
    response = client.post(PATH, data=b"[]", headers=auth(owner))
    assert response.status_code == 401
    assert response.get_json()["error"]["description"] != UNAUTHENTICATED


def test_an_unusable_keys_file_stops_the_start(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "keys.json"
    bad.write_text(json.dumps({"public_keys": [{"key_identifier": "k", "key": "not a pem"}]}))
    with pytest.raises(ConfigError, match="not a PEM"):
        create_app(
            {"container": build(dataclasses.replace(settings, secret_scanning_keys=str(bad)))}
        )


def test_a_changed_keys_file_is_read_again_and_a_broken_one_keeps_the_last_good_keys(
    client: FlaskClient,
    github: GitHubSigner,
    container: Container,
    owner: Bootstrapped,
) -> None:
    path = Path(str(container.settings.secret_scanning_keys))
    successor = GitHubSigner("github-test-key-2")
    successor.write_keys_file(path, github)
    body = report("ghp_x")
    assert client.post(PATH, data=body, headers=successor.headers(body)).status_code == 200
    path.write_text("{ half written")
    assert client.post(PATH, data=body, headers=successor.headers(body)).status_code == 200
