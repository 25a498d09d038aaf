"""``Idempotency-Key`` for ``POST``: a retried request returns the first result.

The key is scoped to the calling API key. The same key with a different
request (method, path, query or body) is refused; a repeat while the first
request still runs gets 409. Only successful (2xx) results are kept, for 24
hours; a refused (4xx) request can be retried with the same key; after a 5xx
the key stays reserved for a minute, since a change may have been recorded.
"""

from __future__ import annotations

import hashlib
import logging
import re

from flask import Flask, Response, g, request

from keyledger.adapters.idempotency import IdempotencyStore, Reservation, Stored
from keyledger.authn.authenticator import SECRET_KEY_HEADER
from keyledger.domain.errors import StoreUnavailable
from keyledger.web.auth import current_principal
from keyledger.web.errors import error_response

log = logging.getLogger("keyledger.web")

HEADER = "Idempotency-Key"
VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def fingerprint() -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.path, request.query_string.decode("latin-1")):
        digest.update(part.encode() + b"\0")
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def install(app: Flask, store: IdempotencyStore) -> None:
    """Register after the authentication hook: only authenticated requests get here."""

    @app.before_request
    def replay_or_reserve() -> Response | None:
        if request.method != "POST" or HEADER not in request.headers or "principal" not in g:
            return None
        key = request.headers[HEADER]
        if not VALID_KEY.fullmatch(key):
            return error_response(
                400,
                f"{HEADER} must be 1-255 visible ASCII characters",
                fields={HEADER: ["1-255 visible ASCII characters"]},
            )
        principal = current_principal()
        record = store.record_key(principal.account_id, principal.secret_key_id, key)
        print_ = fingerprint()
        state = store.reserve(record, print_)
        if state is Reservation.RESERVED:
            g.idempotency = (record, print_)
            return None
        if state is Reservation.IN_PROGRESS:
            return error_response(
                409,
                f"a request with this {HEADER} is in progress or its outcome is unknown; "
                "retry in a minute",
                "idempotency_in_progress",
            )
        if state is Reservation.MISMATCH:
            return error_response(
                409, f"this {HEADER} was used for a different request", "idempotency_key_reused"
            )
        stored = store.load(record, request.headers.get(SECRET_KEY_HEADER, ""))
        if stored is None:
            return error_response(
                409, f"the first result for this {HEADER} cannot be read", "idempotency_key_reused"
            )
        response = Response(stored.body, status=stored.status, content_type=stored.content_type)
        response.headers["Idempotent-Replayed"] = "true"
        return response

    @app.after_request
    def keep_result(response: Response) -> Response:
        pending = g.pop("idempotency", None)
        if pending is None:
            return response
        record, print_ = pending
        try:
            if 200 <= response.status_code < 300:
                result = Stored(
                    response.status_code, response.get_data(), response.content_type or ""
                )
                store.complete(record, print_, request.headers.get(SECRET_KEY_HEADER, ""), result)
            elif response.status_code < 500:
                store.release(record)  # refused, nothing recorded: the key may be used again
            # On a 5xx the outcome is unknown (a change may be recorded): the
            # reservation stays until it expires, and a retry meanwhile gets a 409.
        except StoreUnavailable:
            log.warning("could not keep the result for an %s (redis unavailable)", HEADER)
        return response
