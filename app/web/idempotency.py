"""``Idempotency-Key`` for changes (``POST``, ``PUT``, ``DELETE``): a retried request
returns the first result.

The key is scoped to the calling API key. The same key with a different request
(method, path, query or body) is refused; a repeat while the first request still
runs gets 409, for at most the first request's lease (15 s: after it the first
request can no longer make its change, and the retry runs). A refused (4xx)
request can be retried with the same key; results are kept for 24 hours.

The change of such a request is *deferred* (``service.ChangeScope``): the view
decides it and renders its response as if it were in effect; then this module
appends the change together with that response, sealed, in one script, waits
until it is in effect (else answers 202, as any change) and until the replicas
hold it (else 503, ``web.durability``). So a result exists exactly when its change
does, whatever dies when:

- the change and its result were appended: every retry replays the result, once
  enough replicas hold them (503 until then);
- they were not (refused, or lost with a primary that died before its replicas
  had them): the retry runs as a new request and applies the change once.
"""

from __future__ import annotations

import hashlib
import logging
import re

from flask import Flask, Response, g, request

from keyledger.adapters.eventstore import EventStore
from keyledger.adapters.idempotency import IdempotencyStore, Reservation, Stored
from keyledger.authn.authenticator import SECRET_KEY_HEADER
from keyledger.domain.errors import KeyledgerError, StoreUnavailable
from keyledger.service import CURRENT_SCOPE, UNCONFIRMED, Ledger
from keyledger.web.auth import current_principal
from keyledger.web.blueprint import not_yet_in_effect
from keyledger.web.errors import error_response, handle_keyledger_error

log = logging.getLogger("keyledger.web")

HEADER = "Idempotency-Key"
VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")
CHANGES = frozenset({"POST", "PUT", "DELETE"})


def fingerprint() -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.path, request.query_string.decode("latin-1")):
        digest.update(part.encode() + b"\0")
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def install(app: Flask, store: IdempotencyStore, events: EventStore, ledger: Ledger) -> None:
    """Register after the authentication hook (only authenticated requests get here)
    and after ``durability.install``."""

    def in_progress() -> Response:
        return error_response(
            409,
            f"a request with this {HEADER} is in progress; retry in a few seconds",
            "idempotency_in_progress",
        )

    def replay(record: str) -> Response:
        stored = store.load(record, request.headers.get(SECRET_KEY_HEADER, ""))
        if stored is None:
            return error_response(
                409, f"the first result for this {HEADER} cannot be read", "idempotency_key_reused"
            )
        response = Response(stored.body, status=stored.status, content_type=stored.content_type)
        response.headers["Idempotent-Replayed"] = "true"
        return response

    def unconfirmed() -> Response:
        durability = events.durability
        return error_response(
            503,
            UNCONFIRMED.format(replicas=durability.min_replicas, wait_ms=durability.wait_ms),
            "change_unconfirmed",
            headers={"Retry-After": "1"},
        )

    def settle(record: str) -> Response | None:
        """An ``unconfirmed`` first request: its result once the replicas hold its change;
        None when the log does not hold that change (the record is dropped: run anew)."""
        change = store.change(record)
        if change is None:
            return None
        if not events.holds(change.account_id, change.version, change.digest):
            store.release(record)
            return None
        if not events.replicated(change.account_id):
            return unconfirmed()
        store.confirmed(record)
        return replay(record)

    @app.before_request
    def replay_or_reserve() -> Response | None:
        if request.method not in CHANGES or HEADER not in request.headers or "principal" not in g:
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
        for _attempt in range(2):  # once more after dropping a record whose change is lost
            state, held = store.reserve(record, print_)
            if state is Reservation.RESERVED:
                assert held is not None
                g.idempotency = (record, print_, held)
                scope = CURRENT_SCOPE.get()
                if scope is not None:
                    scope.deferring = True
                return None
            if state is Reservation.IN_PROGRESS:
                return in_progress()
            if state is Reservation.MISMATCH:
                return error_response(
                    409, f"this {HEADER} was used for a different request", "idempotency_key_reused"
                )
            if state is Reservation.DONE:
                return replay(record)
            settled = settle(record)
            if settled is not None:
                return settled
        return in_progress()

    @app.after_request
    def commit_with_result(response: Response) -> Response:
        pending = g.pop("idempotency", None)
        if pending is None:
            return response
        record, print_, held = pending
        secret = request.headers.get(SECRET_KEY_HEADER, "")
        scope = CURRENT_SCOPE.get()
        change = None if scope is None else scope.deferred
        committed = False
        try:
            if change is not None and 200 <= response.status_code < 300:
                result = Stored(
                    response.status_code, response.get_data(), response.content_type or ""
                )
                durable = not events.durability.required
                receipt = store.receipt(
                    record, change.account_id, held, print_, secret, result, durable
                )
                try:
                    outcome = ledger.commit(change, receipt)
                except KeyledgerError as exc:
                    if exc.status < 500:  # refused before anything was written
                        store.release(record, held)
                    return handle_keyledger_error(exc)
                committed = True
                if not outcome.in_effect:
                    response = not_yet_in_effect(response)
                if not (scope is not None and scope.unconfirmed):
                    final = Stored(
                        response.status_code, response.get_data(), response.content_type or ""
                    )
                    store.complete(record, held, print_, secret, final)
            elif 200 <= response.status_code < 300:  # nothing to change: keep the answer
                result = Stored(
                    response.status_code, response.get_data(), response.content_type or ""
                )
                store.complete(record, held, print_, secret, result)
            elif response.status_code < 500:
                store.release(record, held)  # refused, nothing recorded: may be used again
            # On a 5xx nothing was appended by this hook; the reservation runs out with
            # its lease, and a retry then runs anew.
        except StoreUnavailable as exc:
            log.warning("could not keep the result for an %s (%s)", HEADER, exc.description)
            if change is not None and not committed and response.status_code < 300:
                return handle_keyledger_error(exc)  # the change was not made
        return response
