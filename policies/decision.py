"""The result of evaluating a policy: allowed or not, which policy, and why."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    policy: str
    reason: str
    #: HTTP status a denial maps to (401 authentication, 403 authorization).
    status: int = 200

    @classmethod
    def allow(cls, policy: str, reason: str = "ok") -> Decision:
        return cls(True, policy, reason, 200)

    @classmethod
    def deny(cls, policy: str, reason: str, status: int) -> Decision:
        return cls(False, policy, reason, status)
