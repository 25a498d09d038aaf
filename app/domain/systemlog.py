"""How each event reads in the system log (``GET /v1/logs``).

Pure: the syslog projector stores what ``entry_for`` returns. The wording names
resources by their names and ids, never by key material. Every value a user
supplied (names, e-mails, key names, subnets) appears as a JSON string literal
(``text.quoted``), so no value can end the sentence it is quoted in or carry a
control character into an auditor's terminal; values from closed sets (roles)
and our own words are not quoted. The projection renders at projection time: a
rebuild re-renders entries recorded before a wording change.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyledger.domain import events as ev
from keyledger.domain.lifecycle_log import describe_lifecycle
from keyledger.domain.mapper import format_seconds
from keyledger.domain.text import quoted as q


@dataclass(frozen=True)
class LogEntry:
    id: int
    time: str
    originator: str
    api_key_name: str | None
    resource: str
    resource_id: str
    type: str
    description: str


def _describe(event: ev.Event) -> tuple[str, str, str, str]:
    """(resource, resourceId, type, description) for one event."""
    match event:
        case ev.AccountRegistered():
            return "account", event.account_id, "create", f"Account {q(event.name)} registered"
        case ev.ApiEnabled():
            return "account", event.account_id, "update", "API access enabled"
        case ev.ApiDisabled():
            return "account", event.account_id, "update", "API access disabled"
        case ev.AccountKeyIssued():
            return "account-key", event.account_id, "create", "Account key issued"
        case ev.AccountKeyRevoked():
            return "account-key", event.account_id, "delete", "Account key revoked"
        case ev.UserAdded():
            return (
                "user",
                event.user_id,
                "create",
                f"User {q(event.name)} with email {q(event.email)} added with role {event.role}",
            )
        case ev.UserRenamed():
            return (
                "user",
                event.user_id,
                "update",
                f"User {q(event.previous_name)} renamed to {q(event.name)}",
            )
        case ev.UserRoleChanged():
            return (
                "user",
                event.user_id,
                "update",
                f"Role of user {q(event.user_name)} changed from {event.previous_role} to {event.role}",
            )
        case ev.UserRemoved():
            return "user", event.user_id, "delete", f"User {q(event.user_name)} removed"
        case ev.SecretKeyCreated():
            subnets = ", ".join(q(cidr) for cidr in event.allowed_source_ips) or "any source"
            return (
                "api-key",
                event.name,
                "create",
                f"API key {q(event.name)} created for user {q(event.user_name)} ({subnets})",
            )
        case ev.SecretKeyDeleted():
            return (
                "api-key",
                event.name,
                "delete",
                f"API key {q(event.name)} of user {q(event.user_name)} deleted",
            )
        case ev.SourceSubnetAllowed():
            return (
                "api-key",
                event.name,
                "update",
                f"Source subnet {q(event.cidr)} allowed for API key {q(event.name)}",
            )
        case ev.SourceSubnetRemoved():
            return (
                "api-key",
                event.name,
                "update",
                f"Source subnet {q(event.cidr)} removed from API key {q(event.name)}",
            )
    return describe_lifecycle(event)


def entry_for(event: ev.Event) -> LogEntry:
    return LogEntry(*entry_values(event))


def entry_values(
    event: ev.Event,
) -> tuple[int, str, str, str | None, str, str, str, str]:
    """``entry_for``'s fields, in ``LogEntry``'s order, without building one (the
    projection stores them as JSON, once per log entry: a rebuild does it millions of times)."""
    resource, resource_id, kind, description = _describe(event)
    actor = event.actor
    return (
        event.version,
        format_seconds(event.time),
        actor.name,
        actor.api_key_name,
        resource,
        resource_id,
        kind,
        description,
    )
