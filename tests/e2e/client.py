"""A small HTTP client for keyledger's API, sending both key headers on every call.

Each helper states the status it expects and returns the decoded body, so a
test reads as the journey it checks. Every response is checked for a server
error (no request may produce a 500) and handed to an optional recorder, which
the secret scan uses to prove that only the creating response shows a secret.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Protocol

import requests

ACCOUNT_KEY_HEADER = "x-api-key"
SECRET_KEY_HEADER = "x-api-secret-key"
TIMEOUT = 15.0


class Recorder(Protocol):
    def secret(self, token: str | None) -> str | None: ...

    def response(self, response: requests.Response) -> None: ...


class ApiClient:
    def __init__(
        self,
        base_url: str,
        account_key: str | None = None,
        secret_key: str | None = None,
        *,
        secrets: Recorder | None = None,
        allow_server_errors: Iterable[int] = (),
    ):
        self.base_url = base_url.rstrip("/")
        self.account_key = account_key
        self.secret_key = secret_key
        self.recorder = secrets
        self.allow_server_errors = frozenset(allow_server_errors)

    def with_keys(self, account_key: str | None, secret_key: str | None) -> ApiClient:
        return ApiClient(
            self.base_url,
            account_key,
            secret_key,
            secrets=self.recorder,
            allow_server_errors=self.allow_server_errors,
        )

    def allowing(self, *statuses: int) -> ApiClient:
        """The same client, taking these server errors as answers (a failover's 503)."""
        return ApiClient(
            self.base_url,
            self.account_key,
            self.secret_key,
            secrets=self.recorder,
            allow_server_errors=self.allow_server_errors | set(statuses),
        )

    # -- raw requests ----------------------------------------------------------------------
    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"X-Request-Id": f"e2e-{uuid.uuid4().hex}"}
        if self.account_key is not None:
            headers[ACCOUNT_KEY_HEADER] = self.account_key
        if self.secret_key is not None:
            headers[SECRET_KEY_HEADER] = self.secret_key
        headers.update(extra or {})
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        expect: int | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        response = requests.request(
            method,
            f"{self.base_url}{path}",
            headers=self.headers(headers),
            timeout=TIMEOUT,
            allow_redirects=False,
            **kwargs,
        )
        if self.recorder is not None:
            self.recorder.response(response)
        if response.status_code >= 500 and response.status_code not in self.allow_server_errors:
            raise AssertionError(
                f"{method} {path} -> server error {response.status_code}: {response.text}"
            )
        if expect is not None and response.status_code != expect:
            raise AssertionError(
                f"{method} {path}: expected {expect}, got {response.status_code}: {response.text}"
            )
        if self.recorder is not None and response.headers.get("Content-Type", "").startswith(
            "application/json"
        ):
            body = response.json()
            if isinstance(body, dict):
                self.recorder.secret(body.get("secretKey"))
        return response

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    # -- the API, one helper per operation -------------------------------------------------
    def whoami(self, expect: int = 200) -> dict[str, Any]:
        return _json(self.get("/v1/", expect=expect))

    def users(self, expect: int = 200) -> list[dict[str, Any]]:
        return _json(self.get("/v1/users", expect=expect))["users"]  # type: ignore[no-any-return]

    def user(self, user_id: str, expect: int = 200) -> dict[str, Any]:
        return _json(self.get(f"/v1/users/{user_id}", expect=expect))

    def add_user(
        self, name: str, email: str | None = None, role: str = "Owner", expect: int = 201
    ) -> dict[str, Any]:
        email = email or f"{uuid.uuid4().hex[:10]}@example.com"
        body = {"name": name, "email": email, "role": role}
        return _json(self.post("/v1/users", json=body, expect=expect))

    def update_user(self, user_id: str, expect: int = 200, **changes: str) -> dict[str, Any]:
        return _json(self.put(f"/v1/users/{user_id}", json=changes, expect=expect))

    def delete_user(self, user_id: str, expect: int = 204) -> requests.Response:
        return self.delete(f"/v1/users/{user_id}", expect=expect)

    def api_keys(self, expect: int = 200) -> list[dict[str, Any]]:
        return _json(self.get("/v1/api-keys", expect=expect))["apiKeys"]  # type: ignore[no-any-return]

    def api_key(self, name: str, expect: int = 200) -> dict[str, Any]:
        return _json(self.get(f"/v1/api-keys/{name}", expect=expect))

    def create_key(
        self,
        name: str,
        user_id: str,
        allowed_source_ips: list[str] | None = None,
        expect: int = 201,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "userId": user_id}
        if allowed_source_ips is not None:
            body["allowedSourceIps"] = allowed_source_ips
        return _json(self.post("/v1/api-keys", json=body, expect=expect))

    def delete_key(self, name: str, expect: int = 204) -> requests.Response:
        return self.delete(f"/v1/api-keys/{name}", expect=expect)

    def allow_subnet(self, name: str, cidr: str, expect: int = 200) -> dict[str, Any]:
        path = f"/v1/api-keys/{name}/allowed-source-ips"
        return _json(self.post(path, json={"cidr": cidr}, expect=expect))

    def remove_subnet(self, name: str, cidr: str, expect: int = 200) -> dict[str, Any]:
        path = f"/v1/api-keys/{name}/allowed-source-ips"
        return _json(self.delete(path, params={"cidr": cidr}, expect=expect))

    def logs(self, expect: int = 200, **params: Any) -> dict[str, Any]:
        return _json(self.get("/v1/logs", params=params, expect=expect))

    def events(self, expect: int = 200, **params: Any) -> dict[str, Any]:
        return _json(self.get("/v1/events", params=params, expect=expect))

    def all_events(self) -> list[dict[str, Any]]:
        """The whole event history, following the ``next`` links."""
        events: list[dict[str, Any]] = []
        path: str | None = "/v1/events?limit=1000"
        while path:
            page = _json(self.get(path, expect=200))
            events.extend(page["events"])
            path = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
        return events

    def event_count(self) -> int:
        return len(self.all_events())


def _json(response: requests.Response) -> dict[str, Any]:
    if response.status_code == 204 or not response.content:
        return {}
    body = response.json()
    assert isinstance(body, dict), body
    return body


def error_of(response: requests.Response) -> dict[str, Any]:
    """The ``error`` object every failure carries, checked for its shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict)
    assert {"status", "code", "description"} <= set(error), error
    assert error["status"] == response.status_code, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["description"], str) and error["description"], error
    return error
