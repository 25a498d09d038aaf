"""One error format for every failure: ``{"error": {"status", "code", "description"}}``.

Authentication failures are deliberately identical whatever the reason; the
reason goes to the server log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from redis.exceptions import RedisClusterException, RedisError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from keyledger.domain.errors import KeyledgerError, TooManyChanges, error_body
from keyledger.domain.tokens import could_hold_key

log = logging.getLogger("keyledger.web")

UNAUTHENTICATED = "Authentication failed for requested resource"
FORBIDDEN = "Not allowed to access requested resource"

_CODES = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    431: "headers_too_large",
    500: "internal_error",
    503: "service_unavailable",
}


def error_response(
    status: int,
    description: str,
    code: str | None = None,
    fields: Mapping[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = error_body(status, code or _CODES.get(status, "error"), description, fields)
    response = jsonify({"error": body})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def unauthenticated() -> Response:
    return error_response(
        401, UNAUTHENTICATED, headers={"WWW-Authenticate": 'ApiKey realm="keyledger"'}
    )


def forbidden() -> Response:
    return error_response(403, FORBIDDEN)


def flatten_validation(messages: Any) -> dict[str, list[str]]:
    """webargs nests errors by location (``{"json": {"name": [...]}}``); flatten them."""
    flat: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            flat.setdefault(prefix or "_schema", []).extend(value)
        else:
            flat.setdefault(prefix or "_schema", []).append(str(value))

    if isinstance(messages, Mapping):
        for location, inner in messages.items():
            walk("" if location in {"json", "query", "path", "form"} else str(location), inner)
    else:
        walk("", messages)
    return flat


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    if status in (400, 422) and "messages" in data:
        fields = flatten_validation(data["messages"])
        described = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
        return error_response(400, f"invalid request: {described}", fields=fields)
    description = error.description or error.name
    if status == 401:
        return unauthenticated()
    allow = {name: value for name, value in error.get_headers() if name.lower() == "allow"}
    return error_response(status, str(description), headers=allow)


def handle_keyledger_error(error: KeyledgerError) -> Response:
    if error.status == 401:
        return unauthenticated()
    if error.status >= 500:
        log.error("%s: %s", error.code, error.description)
    headers = {}
    if isinstance(error, TooManyChanges):
        headers["Retry-After"] = str(error.retry_after)
    return error_response(error.status, error.description, error.code, error.fields, headers)


def handle_redis_error(error: RedisError | RedisClusterException) -> Response:
    log.error("redis unavailable: %s", type(error).__name__)
    return error_response(503, "storage unavailable; retry later", "service_unavailable")


def handle_unexpected(error: Exception) -> Response:
    log.exception("unexpected error")
    return error_response(500, "internal error")


def register(app: Flask) -> None:
    app.register_error_handler(KeyledgerError, handle_keyledger_error)
    app.register_error_handler(RedisError, handle_redis_error)
    # redis-py's cluster client raises this (not a RedisError) when no node serves a slot.
    app.register_error_handler(RedisClusterException, handle_redis_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
    app.before_request(no_key_in_redirects)


def no_key_in_redirects() -> Response | None:
    """A 404 instead of the router's redirect (a trailing or doubled slash) to a URL that
    could hold a key: the redirect would echo the path and query string in ``Location``
    and its body (Flask answers routing redirects without the error handlers)."""
    redirect = request.routing_exception
    if isinstance(redirect, RequestRedirect) and could_hold_key(redirect.new_url):
        return error_response(404, "not found")
    return None
