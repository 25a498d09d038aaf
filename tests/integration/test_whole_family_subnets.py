"""Through the web app: the subnet that completes a whole address family is a 400 naming
its field and writes nothing (second review, finding C)."""

from __future__ import annotations

from flask.testing import FlaskClient

from keyledger.bootstrap import Container
from tests.integration.helpers import Bootstrapped


def keys(owner: Bootstrapped) -> dict[str, str]:
    return {"x-api-key": owner.account_key, "x-api-secret-key": owner.secret_key}


def test_two_halves_of_the_ipv4_space_are_refused(
    client: FlaskClient, owner: Bootstrapped, container: Container
) -> None:
    path = f"/v1/api-keys/{owner.key_name}/allowed-source-ips"
    assert client.post(path, headers=keys(owner), json={"cidr": "0.0.0.0/1"}).status_code == 200
    version = container.store.version(owner.account_id)

    refused = client.post(path, headers=keys(owner), json={"cidr": "128.0.0.0/1"})

    assert refused.status_code == 400
    assert "cidr" in refused.get_json()["error"]["fields"]
    assert container.store.version(owner.account_id) == version
    # the key still refuses sources outside its half (10.x is in 0.0.0.0/1; 200.x is not)
    assert (
        client.get(
            "/v1/", headers=keys(owner), environ_base={"REMOTE_ADDR": "200.1.1.1"}
        ).status_code
        == 403
    )


def test_a_new_key_with_both_ipv6_halves_is_refused(
    client: FlaskClient, owner: Bootstrapped, container: Container
) -> None:
    version = container.store.version(owner.account_id)
    refused = client.post(
        "/v1/api-keys",
        headers=keys(owner),
        json={
            "name": "wide-open-key",
            "userId": owner.owner_id,
            "allowedSourceIps": ["::/1", "8000::/1"],
        },
    )
    assert refused.status_code == 400
    assert "allowedSourceIps" in refused.get_json()["error"]["fields"]
    assert container.store.version(owner.account_id) == version
