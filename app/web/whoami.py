"""``GET /v1/`` rendered once per key pair and kept until the account changes.

The body of ``GET /v1/`` is the same for every caller of a key pair except for
``httpSourceIp`` (the caller's address): it is rendered once (schema dump and
JSON, byte for byte what the view rendered before) with a slot where the address
goes, and each request splices its own address in.

A rendered body is served while all of these hold:

* the account state it was rendered from is still the one ``Ledger.state``
  answers. That state is re-read exactly when the invalidation channel names the
  account (``AccountRepository``, drained before every lookup by ``AuthCache``),
  so a change to the account, a user, a key or a subnet shows on the next request
  in every process, as the authentication records do;
* no instant at which the body's time-dependent fields change has passed (the
  key's expiry, the end of a previous secret's or account key's grace);
* its last uses were read from Redis less than ``USES_SECONDS`` ago, and this
  process has not written the uses it noted since (``LastUseRecorder.subscribe``).
  Last uses are not changes to the account: other processes write theirs every
  ``KEYLEDGER_LAST_USED_FLUSH_SECONDS``, and a body shows them up to a second later.

At most ``capacity`` pairs (``KEYLEDGER_AUTH_CACHE_SIZE``), least recently used
dropped first; the body holds the account state by a weak reference, so this
cache never keeps a state alive that the account repository let go.

``WhoAmIFastPath`` answers an admitted ``GET /v1/`` whose body is kept here before
Flask is involved, as ``ForwardAuthFastPath`` does for forward authentication:
everything else (denials, errors, a body to render) goes to Flask with the verdict
already made, so answers are the same either way and nothing is decided twice.
"""

from __future__ import annotations

import functools
import json
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Response

from keyledger.authn.authenticator import ACCOUNT_KEY_HEADER, SECRET_KEY_HEADER
from keyledger.domain.account import AccountState
from keyledger.domain.errors import KeyledgerError
from keyledger.observability.wsgi import ROUTE_KEY
from keyledger.service import Ledger
from keyledger.web.auth import (
    FAILURE_KEY,
    VERDICT_KEY,
    Gate,
    environ_header,
    stamped,
)
from keyledger.web.console import BROWSER_HEADERS

USES_SECONDS = 1.0
WHOAMI_PATH = "/v1/"
Pair = tuple[str, str]


@dataclass(frozen=True)
class Rendered:
    """A rendered body with a slot for the caller's address."""

    state: weakref.ref[AccountState]
    #: The body is right until this instant (exclusive); None: until the account changes.
    valid_until: datetime | None
    #: monotonic: its last uses are re-read after this.
    uses_until: float
    before: bytes
    after: bytes
    mimetype: str

    def body(self, source_ip: str | None) -> bytes:
        return self.before + json.dumps(source_ip).encode() + self.after

    def response(self, source_ip: str | None) -> Response:
        return Response(self.body(source_ip), status=200, mimetype=self.mimetype)


def next_change(now: datetime, *instants: datetime | None) -> datetime | None:
    """The earliest of ``instants`` still to come."""
    ahead = [moment for moment in instants if moment is not None and moment > now]
    return min(ahead) if ahead else None


class WhoAmICache:
    def __init__(self, capacity: int, monotonic: Callable[[], float] = time.monotonic):
        self.capacity = capacity
        self.monotonic = monotonic
        #: What stands for the caller's address while a body is rendered.
        self.slot = f"source-{secrets.token_hex(16)}"
        self._bodies: OrderedDict[Pair, Rendered] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, pair: Pair, state: AccountState, now: datetime) -> Rendered | None:
        with self._lock:
            rendered = self._bodies.get(pair)
            if (
                rendered is None
                or rendered.state() is not state
                or (rendered.valid_until is not None and now >= rendered.valid_until)
                or self.monotonic() >= rendered.uses_until
            ):
                self.misses += 1
                return None
            self._bodies.move_to_end(pair)
            self.hits += 1
            return rendered

    def put(
        self,
        pair: Pair,
        state: AccountState,
        valid_until: datetime | None,
        body: bytes,
        mimetype: str,
    ) -> Rendered:
        """Keep ``body`` (rendered with ``slot`` as the address) for ``pair``."""
        slot = json.dumps(self.slot).encode()
        before, found, after = body.partition(slot)
        if not found or slot in after:
            raise ValueError("the rendered body must hold the address slot exactly once")
        rendered = Rendered(
            weakref.ref(state),
            valid_until,
            self.monotonic() + USES_SECONDS,
            before,
            after,
            mimetype,
        )
        with self._lock:
            self._bodies[pair] = rendered
            self._bodies.move_to_end(pair)
            while len(self._bodies) > self.capacity:
                self._bodies.popitem(last=False)
        return rendered

    def forget(self, accounts: list[str] | None = None) -> None:
        """Drop every body (told by the invalidation subscription when everything may
        have changed, and by this process's last-use writer). Bodies of named accounts
        need no dropping: their state is re-read, so they no longer match it."""
        if accounts is None:
            with self._lock:
                self._bodies.clear()

    def __len__(self) -> int:
        return len(self._bodies)


class WhoAmIFastPath:
    """Answers an admitted ``GET /v1/`` from its kept body, before Flask (module doc)."""

    def __init__(self, app: Any, gate: Gate, ledger: Ledger, bodies: WhoAmICache):
        self.app = app
        self.gate = gate
        self.ledger = ledger
        self.bodies = bodies

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != WHOAMI_PATH or environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)

        header = functools.partial(environ_header, environ)

        source = environ.get("REMOTE_ADDR")
        try:
            verdict = self.gate.evaluate(
                "GET", WHOAMI_PATH, source, header(ACCOUNT_KEY_HEADER), header(SECRET_KEY_HEADER)
            )
        except KeyledgerError as exc:
            environ[FAILURE_KEY] = exc  # Flask renders it (503) without trying again
            return self.app(environ, start_response)
        environ[VERDICT_KEY] = verdict
        principal = verdict.result.principal
        if not verdict.admitted or principal is None:
            return self.app(environ, start_response)
        try:
            state = self.ledger.state(principal.account_id)
        except KeyledgerError as exc:
            environ[FAILURE_KEY] = exc  # Flask renders it (503) without waiting again
            return self.app(environ, start_response)
        pair = (principal.account_key_id, principal.secret_key_id)
        rendered = self.bodies.get(pair, state, self.ledger.clock())
        if rendered is None:
            return self.app(environ, start_response)  # the view renders and keeps it
        body = rendered.body(source)
        headers = [
            ("Content-Type", rendered.mimetype),
            ("Content-Length", str(len(body))),
            *stamped(environ, verdict, principal),
            *BROWSER_HEADERS.items(),
        ]
        environ[ROUTE_KEY] = WHOAMI_PATH
        start_response("200 OK", headers)
        return [body]
