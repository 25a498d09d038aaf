"""Through the web app: invisible names and compatibility-form e-mails are a 400 naming
the field and write nothing (second review, finding D)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from keyledger.bootstrap import Container
from tests.integration.helpers import Bootstrapped


def keys(owner: Bootstrapped) -> dict[str, str]:
    return {"x-api-key": owner.account_key, "x-api-secret-key": owner.secret_key}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Bob\u3164X", "email": "bob@example.com", "role": "Viewer"}, "name"),
        ({"name": "Bob\ufe0fX", "email": "bob@example.com", "role": "Viewer"}, "name"),
        ({"name": "Own A", "email": "own\uff21@example.com", "role": "Viewer"}, "email"),
    ],
)
def test_the_reviews_users_are_refused(
    client: FlaskClient, owner: Bootstrapped, container: Container, body: dict[str, str], field: str
) -> None:
    version = container.store.version(owner.account_id)
    response = client.post("/v1/users", headers=keys(owner), json=body)
    assert response.status_code == 400
    assert list(response.get_json()["error"]["fields"]) == [field]
    assert container.store.version(owner.account_id) == version


def test_a_name_with_combining_accents_is_accepted(
    client: FlaskClient, owner: Bootstrapped
) -> None:
    body = {"name": "Jose\u0301 Nguye\u0302\u0303n", "email": "jose@example.com", "role": "Viewer"}
    response = client.post("/v1/users", headers=keys(owner), json=body)
    assert response.status_code == 201 and response.get_json()["name"] == body["name"]
