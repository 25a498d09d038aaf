"""What keyledger's components report while they work, and the request being served.

Components hold an ``Observer`` and call it at the one place where the thing
happens (a decision, a key verification, an append). The base class does
nothing, so a component works the same with no observability installed; the
entry points install ``keyledger.observability.web.WebObserver``. This module
imports nothing heavy: the authentication hot path depends on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keyledger.domain.events import Event
    from keyledger.web.auth import Verdict


class Observer:
    """Receives what components do. This base ignores everything."""

    __slots__ = ()

    def decided(self, verdict: Verdict) -> None:
        """The gate decided a request (authentication, policies, rate limit)."""

    def key_verified(self, cached: bool) -> None:
        """A presented key was checked: from process memory (``cached``) or with argon2."""

    def appended(self, events: Sequence[Event]) -> None:
        """Events were appended to the log."""


IGNORE = Observer()


class RequestRecord:
    """What the WSGI middleware learns about the request it is serving, from deeper layers."""

    __slots__ = ("verdict",)

    def __init__(self) -> None:
        self.verdict: Verdict | None = None


#: The record of the request this thread serves (set by ``wsgi.ObservedApp``).
CURRENT_REQUEST: ContextVar[RequestRecord | None] = ContextVar("keyledger_request", default=None)
