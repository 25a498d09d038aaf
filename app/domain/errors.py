"""One exception hierarchy for the whole product.

Each error carries the HTTP status and a stable machine-readable ``code``; the
web layer turns any of them into ``{"error": {"status", "code", "description"}}``
and the CLI into a message and exit status. Messages never contain secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keyledger.domain.tokens import redact_held


class KeyledgerError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, description: str, *, fields: Mapping[str, list[str]] | None = None):
        super().__init__(description)
        self.description = description
        self.fields = dict(fields or {})


def error_body(
    status: int, code: str, description: str, fields: Mapping[str, list[str]] | None = None
) -> dict[str, Any]:
    """An error as the API and the CLI's ``--json`` show it. Descriptions and fields quote
    what a client sent (a name not found, an unknown field): what input would refuse as a
    possible key (``tokens.redact_held``) is redacted, so a key sent in the wrong place is
    not echoed (an answer may be logged by a proxy, a terminal kept in a CI log)."""
    body: dict[str, Any] = {"status": status, "code": code, "description": redact_held(description)}
    if fields:
        body["fields"] = {
            redact_held(name): [redact_held(message) for message in messages]
            for name, messages in fields.items()
        }
    return body


class InvalidInput(KeyledgerError):
    status = 400
    code = "invalid_input"


class NotFound(KeyledgerError):
    status = 404
    code = "not_found"


class Conflict(KeyledgerError):
    status = 409
    code = "conflict"


class ConcurrencyConflict(Conflict):
    """Another writer appended to the account first (optimistic concurrency lost)."""

    code = "concurrent_modification"


class LimitExceeded(Conflict):
    code = "limit_exceeded"


class TooManyChanges(KeyledgerError):
    """The account used its budget of changes for this minute; ``retry_after`` seconds."""

    status = 429
    code = "too_many_changes"

    def __init__(self, description: str, *, retry_after: int):
        super().__init__(description)
        self.retry_after = retry_after


class AuthenticationFailed(KeyledgerError):
    status = 401
    code = "unauthenticated"


class Forbidden(KeyledgerError):
    status = 403
    code = "forbidden"


class StoreUnavailable(KeyledgerError):
    """Redis could not be reached or answered an error: fail closed."""

    status = 503
    code = "service_unavailable"


class RequestExpired(StoreUnavailable):
    """A request with an ``Idempotency-Key`` reached its change after its reservation's
    lease: nothing was written (a retry may already run it)."""

    code = "request_expired"


class ChangeUnconfirmed(StoreUnavailable):
    """A change was appended, but fewer replicas than required confirmed it in time: it
    may or may not survive a failover. Names the version it was appended as."""

    code = "change_unconfirmed"

    def __init__(self, description: str, *, account_id: str, version: int, digest: str):
        super().__init__(description)
        self.account_id = account_id
        self.version = version
        self.digest = digest
