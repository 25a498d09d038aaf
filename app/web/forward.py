"""Forward authentication for a reverse proxy (nginx ``auth_request``, Traefik ForwardAuth).

The proxy sends a subrequest with the client's key headers and the original
method and URI; keyledger evaluates the same policies for them and answers
200 with who the caller is, or 401/403/429. A missing or malformed original
method or URI is a proxy misconfiguration: 400, which proxies treat as an
error (fail closed).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request

from keyledger.authn.authenticator import ACCOUNT_KEY_HEADER, SECRET_KEY_HEADER, Principal
from keyledger.config import FORWARD_AUTH_HEADERS
from keyledger.domain.errors import KeyledgerError
from keyledger.domain.paths import AmbiguousPath, decided_path
from keyledger.web.auth import (
    FAILURE_KEY,
    VERDICT_KEY,
    Gate,
    environ_header,
    stamped,
)
from keyledger.web.blueprint import Blueprint
from keyledger.web.errors import error_response

forward_blp = Blueprint("forward", __name__, url_prefix="/v1/auth", description="For proxies")

METHOD = re.compile(r"[A-Z]{1,16}")
MAX_URI = 8192


CHECK_PATH = "/v1/auth/check"
Header = Callable[[str], str | None]


def original_request(header: Header, family: tuple[str, str]) -> tuple[str, str] | str:
    """The original method and the path to decide on, from the proxy's headers, or what is
    wrong (then the answer is 400: never a decision on a path routers could read otherwise).

    Only the configured header family is read: a proxy sets its own family, and
    a client could add the other one to have a different request decided. The
    Flask view and the WSGI fast path both call this, so both refuse alike.
    """
    method_header, uri_header = family
    method, uri = header(method_header), header(uri_header)
    if method is None or uri is None or not METHOD.fullmatch(method):
        return f"{method_header} and {uri_header} are required"
    if len(uri) > MAX_URI:
        return f"{uri_header} is longer than {MAX_URI} characters"
    try:
        return method, decided_path(uri)
    except AmbiguousPath as exc:
        return f"{uri_header} refused: {exc}; routers disagree on such URIs"


def identity_headers(principal: Principal) -> dict[str, str]:
    return {
        "X-Account-Id": principal.account_id,
        "X-Api-Key-Name": principal.key_name,
        "X-User-Id": principal.user_id,
        "X-User-Role": principal.role,
    }


@forward_blp.route("/check")
@forward_blp.doc(
    parameters=[
        {"in": "header", "name": "X-Original-Method", "schema": {"type": "string"}},
        {"in": "header", "name": "X-Original-URI", "schema": {"type": "string"}},
    ]
)
def check() -> Any:
    """Decide whether the original request may pass (for ``auth_request`` / ForwardAuth)."""
    failure = request.environ.get(FAILURE_KEY)
    if failure is not None:
        raise failure  # the fast path already tried: answer its error, do not wait again
    settings = current_app.extensions["keyledger"].settings
    parsed = original_request(
        request.headers.get, FORWARD_AUTH_HEADERS[settings.forward_auth_headers]
    )
    if isinstance(parsed, str):
        return error_response(400, parsed)
    method, path = parsed
    gate: Gate = current_app.extensions["keyledger.gate"]
    admitted = gate.admit(method, path, request.environ.get(VERDICT_KEY))
    if isinstance(admitted, Response):
        return admitted
    response = Response(status=200)
    response.headers.update(identity_headers(admitted))
    return response


class ForwardAuthFastPath:
    """Answers admitted ``GET /v1/auth/check`` requests before Flask is involved.

    The check runs on every request a proxy forwards, so its cost is the
    protected service's cost: an admitted request is decided and answered here,
    straight from the WSGI environ. Everything else (denials, errors, bad
    headers) goes to the Flask view, which renders the verdict already made, so
    answers are the same either way and nothing is decided twice.
    """

    def __init__(self, app: Any, gate: Gate, family: tuple[str, str]):
        self.app = app
        self.gate = gate
        self.family = family

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != CHECK_PATH or environ.get("REQUEST_METHOD") not in (
            "GET",
            "HEAD",
        ):
            return self.app(environ, start_response)

        header = functools.partial(environ_header, environ)

        parsed = original_request(header, self.family)
        if isinstance(parsed, str):
            return self.app(environ, start_response)
        try:
            verdict = self.gate.evaluate(
                parsed[0],
                parsed[1],
                environ.get("REMOTE_ADDR"),
                header(ACCOUNT_KEY_HEADER),
                header(SECRET_KEY_HEADER),
            )
        except KeyledgerError as exc:
            environ[FAILURE_KEY] = exc  # Flask renders it (503) without trying again
            return self.app(environ, start_response)
        principal = verdict.result.principal
        if not verdict.admitted or principal is None:
            environ[VERDICT_KEY] = verdict
            return self.app(environ, start_response)
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", "0"),
            *identity_headers(principal).items(),
            *stamped(environ, verdict, principal),
        ]
        start_response("200 OK", headers)
        return [b""]
