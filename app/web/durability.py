"""A change no replica confirmed is answered 503, never 2xx (``KEYLEDGER_MIN_REPLICAS``).

Each request runs in a ``ChangeScope``: the ledger notes there the changes that
fewer replicas than required confirmed in time, and returns their result as
usual, so that ``keyledger.web.idempotency`` can keep that result for a retry
with the same ``Idempotency-Key``. This hook, which runs after it, then replaces
the response with a 503 saying that the change may or may not have been
recorded and how to retry.
"""

from __future__ import annotations

from flask import Flask, Response, g

from keyledger.service import CURRENT_SCOPE, ChangeScope
from keyledger.web.errors import error_response


def install(app: Flask) -> None:
    """Register before ``idempotency.install``: its ``after_request`` must run first."""

    @app.before_request
    def open_scope() -> None:
        g.change_scope = CURRENT_SCOPE.set(ChangeScope())

    @app.after_request
    def refuse_unconfirmed(response: Response) -> Response:
        scope = CURRENT_SCOPE.get()
        if scope is None or not scope.unconfirmed:
            return response
        return error_response(
            503,
            scope.unconfirmed[0].description,
            scope.unconfirmed[0].code,
            headers={"Retry-After": "1"},
        )

    @app.teardown_request
    def close_scope(_error: BaseException | None) -> None:
        token = g.pop("change_scope", None)
        if token is not None:
            CURRENT_SCOPE.reset(token)
