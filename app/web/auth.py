"""Request authentication for the Flask app, and the same check for other Flask apps.

``install(app)`` guards every route of keyledger's own API (deny by default:
only the endpoints in ``PUBLIC_ENDPOINTS`` are open). ``require_api_key`` is the
decorator a Flask service uses to authenticate in process against the same
Redis with the same policies.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, g, request

from keyledger.adapters.lastused import LastUseRecorder
from keyledger.adapters.ratelimit import Allowance, RateLimiter
from keyledger.authn.authenticator import (
    ACCOUNT_KEY_HEADER,
    SECRET_KEY_HEADER,
    Authenticator,
    AuthResult,
    Principal,
)
from keyledger.domain.events import Actor
from keyledger.domain.mapper import format_time
from keyledger.domain.revocations import KEY_ITEM, revokes
from keyledger.domain.tokens import could_hold_key
from keyledger.observability.logs import MAX_METHOD, MAX_PATH, loggable
from keyledger.observability.observer import IGNORE, Observer
from keyledger.policies import previous_secret_read_only
from keyledger.web import console
from keyledger.web.errors import error_response, forbidden, unauthenticated

log = logging.getLogger("keyledger.auth")

PUBLIC_ENDPOINTS = frozenset(
    {
        "health.healthz",
        "api-docs.openapi_json",
        "api-docs.openapi_swagger_ui",
        "forward.check",  # authenticates the original request itself
        "secret_scanning.github",  # GitHub signs each report (app.web.scanning)
    }
)
#: The console's page and files, and Swagger UI's files: public, like the OpenAPI document.
PUBLIC_ENDPOINTS |= console.PUBLIC_ENDPOINTS
#: On authenticated responses when the presented credentials stop working at some instant.
EXPIRES_HEADER = "X-Api-Key-Expires"
#: Where a verdict made before Flask (a WSGI fast path) waits for Flask to render it, and
#: where the error it met waits to be answered (503), so that nothing is decided twice.
VERDICT_KEY = "keyledger.verdict"
FAILURE_KEY = "keyledger.failure"
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

F = TypeVar("F", bound=Callable[..., Any])
Header = tuple[str, str]


def choose_request_id(presented: str | None) -> str:
    """The client's X-Request-Id when it is a sane token, else a new one. A token that
    could hold a key (``tokens.could_hold_key``: a key's prefix, or more than 32 letters
    and digits in a row, in any case, but a hex digest) is not taken: the id goes into
    every log line and into the event log of a change, and a client that sent its secret
    there would have it kept for ever. A UUID or a hex digest is kept."""
    if presented and REQUEST_ID.fullmatch(presented) and not could_hold_key(presented):
        return presented
    return _new_request_id()


class _RequestIds:
    """New request ids: 32 hex digits (as uuid4().hex gave) that nobody can predict, made
    without a system call. ``os.urandom`` lets the GIL go for its system call, and with
    several server threads every request then handed the GIL to another thread and back
    (docs/operators.md, "Performance"); a counter hashed with BLAKE2b under a key drawn
    once per process (again after a fork) keeps the GIL and is as unguessable."""

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._key = os.urandom(32)
        self._counter = itertools.count()

    def __call__(self) -> str:
        number = next(self._counter).to_bytes(8, "big")
        return hashlib.blake2b(number, key=self._key, digest_size=16).hexdigest()


_new_request_id = _RequestIds()


@functools.lru_cache(maxsize=64)
def environ_key(header: str) -> str:
    """The WSGI environ's name of a request header (the fast paths read a few, often)."""
    return "HTTP_" + header.upper().replace("-", "_")


def environ_header(environ: dict[str, Any], name: str) -> str | None:
    """A request header from the WSGI environ, before Flask is involved."""
    value = environ.get(environ_key(name))
    return value if value is None else str(value)


def request_id() -> str:
    rid = g.get("request_id")
    if rid is None:
        rid = g.request_id = choose_request_id(request.headers.get("X-Request-Id"))
    return cast(str, rid)


@dataclass(frozen=True)
class Verdict:
    """What the gate decided: the authentication result and, once admitted, the rate limit."""

    result: AuthResult
    allowance: Allowance | None = None

    @property
    def admitted(self) -> bool:
        return self.result.allowed and (self.allowance is None or self.allowance.allowed)


class Gate:
    """Authenticates the current request for a method and path, then applies the rate limit.

    Used by keyledger's own API, the forward-authentication endpoint and the
    ``require_api_key`` decorator, so all three decide the same way.
    """

    def __init__(
        self,
        authenticator: Authenticator,
        limiter: RateLimiter,
        last_use: LastUseRecorder | None = None,
        revocations: RateLimiter | None = None,
    ):
        self.authenticator = authenticator
        self.limiter = limiter
        #: The budget of keyledger's own revocation requests (deleting a key or a user,
        #: disabling a key): the same limit per *secret* key, counted apart, so that neither
        #: a key spending the account key's requests (a Logs Viewer's loop) nor a key
        #: spending its own revocations can stop another key's Owner from revoking it.
        #: None: revocations share the one budget (the Flask extension).
        self.revocations = revocations
        #: Told every verdict (metrics, the request log); installed by the entry point.
        self.observer: Observer = IGNORE
        self.last_use = last_use

    def evaluate(
        self,
        method: str,
        path: str,
        source_ip: str | None,
        account_key: str | None,
        secret_key: str | None,
        revocation: bool = False,
    ) -> Verdict:
        """Decide without Flask (the forward-auth fast path uses this directly).

        ``revocation``: the request is one of keyledger's own revocations
        (``keyledger.domain.revocations.revokes``), counted on its own budget.
        """
        result = self.authenticator.authenticate(
            method=method,
            path=path,
            source_ip=source_ip,
            account_key=account_key,
            secret_key=secret_key,
        )
        principal = result.principal
        if result.allowed and principal is not None and self.last_use is not None:
            self.last_use.note((principal.secret_key_id, principal.account_key_id), source_ip)
        lane = revocation and self.revocations is not None
        limiter = self.revocations if lane and self.revocations is not None else self.limiter
        if not result.allowed or principal is None or not limiter.enabled:
            verdict = Verdict(result)
        else:
            # Revocations count per secret key: a stolen or runaway key that spends its own
            # window (even on deletes of keys that do not exist) leaves every other key's.
            counted = principal.secret_key_id if lane else principal.account_key_id
            verdict = Verdict(result, limiter.hit(counted))
        self.observer.decided(verdict)
        return verdict

    def admit(
        self,
        method: str,
        path: str,
        verdict: Verdict | None = None,
        revocation: bool = False,
    ) -> Principal | Response:
        """Decide for the current Flask request (or render ``verdict`` made earlier)."""
        if verdict is None:
            verdict = self.evaluate(
                method,
                path,
                request.remote_addr,
                request.headers.get(ACCOUNT_KEY_HEADER),
                request.headers.get(SECRET_KEY_HEADER),
                revocation,
            )
        result, allowance = verdict.result, verdict.allowance
        if not result.allowed or result.principal is None:
            return denial(result, method, path)
        if allowance is not None:
            g.rate_limit_remaining = allowance.remaining
            if not allowance.allowed:
                return error_response(
                    429,
                    f"rate limit of {self.limiter.per_minute} requests per minute exceeded",
                    "too_many_requests",
                    headers={"Retry-After": str(allowance.retry_after)},
                )
        g.principal = result.principal
        return result.principal


def denial(result: AuthResult, method: str, path: str) -> Response:
    decision = result.decision
    # Everything the client chose is redacted and cut: a key in the path, the method (any
    # token), or in the reason, which may quote both ("role 'Viewer' may not DELETE ...").
    log.info(
        "denied %r %r from %r: %s (%r) request_id=%s",
        loggable(method, MAX_METHOD),
        loggable(path, MAX_PATH),
        request.remote_addr,
        decision.policy,
        loggable(decision.reason, MAX_PATH),
        request_id(),
    )
    if decision.status == 429:
        return error_response(
            429,
            "too many failed authentications; retry later",
            "too_many_requests",
            headers={"Retry-After": str(result.retry_after or 60)},
        )
    if decision.policy == previous_secret_read_only.NAME:
        return error_response(403, decision.reason, "previous_secret_read_only")
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


def expires_header(principal: Principal) -> dict[str, str]:
    """``X-Api-Key-Expires`` when the presented keys stop working at some instant."""
    if principal.expires_at is None:
        return {}
    return {EXPIRES_HEADER: format_time(datetime.fromtimestamp(principal.expires_at, UTC))}


def stamp(response: Response) -> Response:
    """Request id, no caching, the caller's remaining rate-limit allowance and, when the
    keys expire, when (so that clients can warn their users in time)."""
    response.headers["X-Request-Id"] = request_id()
    response.headers.setdefault("Cache-Control", "no-store")
    remaining = g.get("rate_limit_remaining")
    if remaining is not None:
        response.headers["X-Rate-Limit-Remaining"] = str(remaining)
    principal = g.get("principal")
    if principal is not None:
        response.headers.update(expires_header(principal))
    return response


def stamped(environ: dict[str, Any], verdict: Verdict, principal: Principal) -> list[Header]:
    """What ``stamp`` puts on a Flask response, for an admitted answer made before Flask."""
    headers = [
        ("X-Request-Id", choose_request_id(environ_header(environ, "X-Request-Id"))),
        ("Cache-Control", "no-store"),
    ]
    if verdict.allowance is not None:
        headers.append(("X-Rate-Limit-Remaining", str(verdict.allowance.remaining)))
    headers.extend(expires_header(principal).items())
    return headers


def asks_revocation() -> bool:
    """Whether the current request to keyledger's own API asks for a revocation
    (``revokes``). The body is read only where it decides: a PUT of a key's item."""
    if request.method == "PUT" and KEY_ITEM.fullmatch(request.path):
        return revokes(request.method, request.path, request.get_json(silent=True))
    return revokes(request.method, request.path)


def install(app: Flask, gate: Gate) -> None:
    @app.before_request
    def authenticate() -> Response | None:
        request_id()
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        failure = request.environ.get(FAILURE_KEY)
        if failure is not None:
            raise failure  # a fast path already tried: answer its error, do not wait again
        verdict = request.environ.get(VERDICT_KEY)
        # A verdict made before Flask was made with its lane already: nothing to ask.
        revocation = verdict is None and asks_revocation()
        admitted = gate.admit(request.method, request.path, verdict, revocation)
        return admitted if isinstance(admitted, Response) else None

    app.after_request(stamp)


def require_api_key(view: F) -> F:
    """Protect a view of a Flask app set up with ``app.web.extension.KeyLedger``.

    The view then finds the caller in ``flask.g.principal``.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        gate: Gate = current_app.extensions["keyledger.gate"]
        admitted = gate.admit(request.method, request.path)
        if isinstance(admitted, Response):
            return admitted
        return view(*args, **kwargs)

    return cast(F, wrapper)
