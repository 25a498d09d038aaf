"""Request authentication for the Flask app, and the same check for other Flask apps.

``install(app)`` guards every route of keyledger's own API (deny by default:
only the endpoints in ``PUBLIC_ENDPOINTS`` are open). ``require_api_key`` is the
decorator a Flask service uses to authenticate in process against the same
Redis with the same policies.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, g, request

from app.authn.authenticator import (
    ACCOUNT_KEY_HEADER,
    SECRET_KEY_HEADER,
    Authenticator,
    AuthResult,
    Principal,
)
from app.domain.events import Actor
from app.web.errors import forbidden, unauthenticated

log = logging.getLogger("keyledger.auth")

PUBLIC_ENDPOINTS = frozenset(
    {"health.healthz", "api-docs.openapi_json", "api-docs.openapi_swagger_ui", "static"}
)
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

F = TypeVar("F", bound=Callable[..., Any])


def request_id() -> str:
    rid = g.get("request_id")
    if rid is None:
        presented = request.headers.get("X-Request-Id", "")
        rid = presented if REQUEST_ID.fullmatch(presented) else uuid.uuid4().hex
        g.request_id = rid
    return cast(str, rid)


def check_request(authenticator: Authenticator) -> AuthResult:
    return authenticator.authenticate(
        method=request.method,
        path=request.path,
        source_ip=request.remote_addr,
        account_key=request.headers.get(ACCOUNT_KEY_HEADER),
        secret_key=request.headers.get(SECRET_KEY_HEADER),
    )


def denial(result: AuthResult) -> Response:
    decision = result.decision
    log.info(
        "denied %r %r from %r: %s (%r) request_id=%s",
        request.method,
        request.path,
        request.remote_addr,
        decision.policy,
        decision.reason,
        request_id(),
    )
    return unauthenticated() if decision.status == 401 else forbidden()


def current_principal() -> Principal:
    principal = g.get("principal")
    if principal is None:
        raise RuntimeError("no authenticated principal for this request")
    return cast(Principal, principal)


def current_actor() -> Actor:
    p = current_principal()
    return Actor(
        kind="user",
        name=p.user_name,
        user_id=p.user_id,
        api_key_name=p.key_name,
        source_ip=request.remote_addr,
        request_id=request_id(),
    )


def install(app: Flask, authenticator: Authenticator) -> None:
    @app.before_request
    def authenticate() -> Response | None:
        request_id()
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        result = check_request(authenticator)
        if not result.allowed:
            return denial(result)
        g.principal = result.principal
        return None

    @app.after_request
    def stamp(response: Response) -> Response:
        response.headers["X-Request-Id"] = request_id()
        response.headers.setdefault("Cache-Control", "no-store")
        return response


def require_api_key(view: F) -> F:
    """Protect a view of any Flask app whose ``app.extensions["keyledger"]`` is a ``Container``.

    The view then finds the caller in ``flask.g.principal``.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        authenticator: Authenticator = current_app.extensions["keyledger"].authenticator
        result = check_request(authenticator)
        if not result.allowed:
            return denial(result)
        g.principal = result.principal
        return view(*args, **kwargs)

    return cast(F, wrapper)
