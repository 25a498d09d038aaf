"""How the key-lifecycle events read in the system log (``GET /v1/logs``).

Every value a user supplied (key names, user names, descriptions, URLs) appears in
double quotes, JSON-escaped, so that no value can pose as part of the sentence.
"""

from __future__ import annotations

from keyledger.domain import events as ev
from keyledger.domain.mapper import format_seconds
from keyledger.domain.text import quoted


def found_at(url: str) -> str:
    return f" at {quoted(url)}" if url else ""


def describe_lifecycle(event: ev.Event) -> tuple[str, str, str, str]:
    """(resource, resourceId, type, description) for one lifecycle event."""
    match event:
        case ev.SecretKeyRotated():
            until = (
                f"previous secret valid until {format_seconds(event.previous_expires)}"
                if event.previous_expires is not None
                else "previous secret stopped at once"
            )
            return "api-key", event.name, "update", f"API key {quoted(event.name)} rotated; {until}"
        case ev.PreviousSecretExpired():
            return (
                "api-key",
                event.name,
                "update",
                f"Previous secret of API key {quoted(event.name)} expired at "
                f"{format_seconds(event.expired_at)} (end of the rotation's grace period)",
            )
        case ev.PreviousSecretRevoked():
            return (
                "api-key",
                event.name,
                "update",
                f"Previous secret of API key {quoted(event.name)} revoked: reported "
                f"{event.reason}{found_at(event.url)}",
            )
        case ev.SecretKeyDisabled():
            return "api-key", event.name, "update", f"API key {quoted(event.name)} disabled"
        case ev.SecretKeyEnabled():
            return "api-key", event.name, "update", f"API key {quoted(event.name)} enabled"
        case ev.SecretKeyDescriptionChanged():
            change = f"set to {quoted(event.description)}" if event.description else "removed"
            return (
                "api-key",
                event.name,
                "update",
                f"Description of API key {quoted(event.name)} {change}",
            )
        case ev.SecretKeyExpiryChanged():
            change = (
                f"set to {format_seconds(event.expires)}"
                if event.expires is not None
                else "removed: the key no longer expires"
            )
            return (
                "api-key",
                event.name,
                "update",
                f"Expiry of API key {quoted(event.name)} {change}",
            )
        case ev.SecretKeyExpired():
            return (
                "api-key",
                event.name,
                "update",
                f"API key {quoted(event.name)} expired at {format_seconds(event.expired_at)}",
            )
        case ev.SecretKeyRevoked():
            return (
                "api-key",
                event.name,
                "delete",
                f"API key {quoted(event.name)} of user {quoted(event.user_name)} revoked: "
                f"reported {event.reason}{found_at(event.url)}",
            )
        case ev.AccountKeyRetired():
            return (
                "account-key",
                event.account_id,
                "update",
                f"Account key rotated; previous account key valid until "
                f"{format_seconds(event.expires)}",
            )
        case ev.PreviousAccountKeyExpired():
            return (
                "account-key",
                event.account_id,
                "delete",
                f"Previous account key expired at {format_seconds(event.expired_at)} "
                "(end of the rotation's grace period)",
            )
        case ev.AccountKeyReportedLeaked():
            return (
                "account-key",
                event.account_id,
                "update",
                f"Account key reported leaked{found_at(event.url)}; rotate it with a grace period",
            )
    raise ValueError(f"no system-log wording for {type(event).__name__}")
