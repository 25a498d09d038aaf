"""Forward authentication for a reverse proxy (nginx ``auth_request``, Traefik ForwardAuth).

The proxy sends a subrequest with the client's key headers and the original
method and URI; keyledger evaluates the same policies for them and answers
200 with who the caller is, or 401/403/429. A missing or malformed original
method or URI is a proxy misconfiguration: 400, which proxies treat as an
error (fail closed).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any
from urllib.parse import unquote

from flask import Response, current_app, request

from app.web.auth import Gate
from app.web.blueprint import Blueprint
from app.web.errors import error_response

forward_blp = Blueprint("forward", __name__, url_prefix="/v1/auth", description="For proxies")

METHOD = re.compile(r"[A-Z]{1,16}")
MAX_URI = 8192


def canonical_path(uri: str) -> str:
    """The path a server routes on: decoded, slashes merged, dot segments resolved,
    so ``/v1/%65vents`` or ``/v1/x/../events`` is decided as ``/v1/events``."""
    path = unquote(uri.split("?", 1)[0].split("#", 1)[0])
    return posixpath.normpath(re.sub("/{2,}", "/", path))


def original(*names: str) -> str | None:
    for name in names:
        value = request.headers.get(name)
        if value is not None:
            return value
    return None


@forward_blp.route("/check")
@forward_blp.doc(
    parameters=[
        {"in": "header", "name": "X-Original-Method", "schema": {"type": "string"}},
        {"in": "header", "name": "X-Original-URI", "schema": {"type": "string"}},
    ]
)
def check() -> Any:
    """Decide whether the original request may pass (for ``auth_request`` / ForwardAuth)."""
    method = original("X-Original-Method", "X-Forwarded-Method")
    uri = original("X-Original-URI", "X-Forwarded-Uri")
    if method is None or uri is None or not METHOD.fullmatch(method):
        return error_response(
            400, "X-Original-Method and X-Original-URI (or X-Forwarded-*) are required"
        )
    if len(uri) > MAX_URI or not uri.startswith("/") or not uri.isprintable():
        return error_response(400, "X-Original-URI must be an absolute path")
    gate: Gate = current_app.extensions["keyledger.gate"]
    path = canonical_path(uri)
    if not path.startswith("/") or not path.isprintable():
        return error_response(400, "X-Original-URI must be an absolute path")
    admitted = gate.admit(method, path)
    if isinstance(admitted, Response):
        return admitted
    response = Response(status=200)
    response.headers.update(
        {
            "X-Account-Id": admitted.account_id,
            "X-Api-Key-Name": admitted.key_name,
            "X-User-Id": admitted.user_id,
            "X-User-Role": admitted.role,
        }
    )
    return response
