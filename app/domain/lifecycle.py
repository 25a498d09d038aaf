"""A key's life between creation and deletion: rotation, expiry, disable, leaks (issue 9).

Pure decisions like those in ``decisions``: each validates a command against the
account's state and the moment it is decided at (``Recorder.now``), and records
events or raises (recording nothing). Time-based conditions are never decided
here for access: a key stops working at its instant because the policies compare
the projected record with the clock; ``record_expiries`` only writes down, after
the fact, what the clock already decided, so that the system log shows it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from keyledger.domain import commands as cmd
from keyledger.domain import events as ev
from keyledger.domain.account import AccountState, Limits, Recorder, check_text
from keyledger.domain.errors import Conflict, InvalidInput
from keyledger.domain.mapper import format_seconds
from keyledger.domain.tokens import redact_held

MAX_GRACE_SECONDS = 7 * 24 * 3600
MAX_DESCRIPTION = 200
LEAKED = "leaked"
_DURATION = re.compile(r"([0-9]{1,7})([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def to_millis(moment: datetime) -> datetime:
    """``moment`` without its sub-millisecond part: what the log stores of a moment."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def parse_duration(text: str) -> int:
    """Seconds in ``90s``, ``15m``, ``24h`` or ``7d`` (``0s`` is none); ValueError otherwise."""
    found = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise ValueError(
            f"{str(text)[:32]!r} is not a duration: a whole number and a unit, "
            "s, m, h or d (e.g. 90s, 15m, 24h, 7d)"
        )
    return int(found[1]) * _UNIT_SECONDS[found[2]]


def check_grace(seconds: int, field_name: str = "gracePeriodSeconds") -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise InvalidInput("invalid grace period", fields={field_name: ["a whole number"]})
    if not 0 <= seconds <= MAX_GRACE_SECONDS:
        raise InvalidInput(
            "invalid grace period",
            fields={field_name: [f"0 to {MAX_GRACE_SECONDS} seconds (7 days)"]},
        )
    return seconds


def check_description(text: str) -> str:
    """At most 200 printable characters: no control, format (bidi, zero-width) or
    line-separator characters, which could disguise what a log line says."""
    if not isinstance(text, str) or len(text) > MAX_DESCRIPTION:
        raise InvalidInput(
            "invalid description",
            fields={"description": [f"at most {MAX_DESCRIPTION} printable characters"]},
        )
    return check_text(text, "description", "description")


def check_expiry(expires: datetime, now: datetime, limits: Limits) -> datetime:
    """An expiry in the future, at most ``max_key_lifetime_days`` ahead (0: no limit)."""
    if not isinstance(expires, datetime) or expires.tzinfo is None:
        raise InvalidInput(
            "invalid expiry", fields={"expiresTimestamp": ["an ISO 8601 time with its zone"]}
        )
    expires = to_millis(expires.astimezone(UTC))
    if expires <= now:
        raise InvalidInput(
            "invalid expiry",
            fields={"expiresTimestamp": [f"must lie in the future (now: {format_seconds(now)})"]},
        )
    days = limits.max_key_lifetime_days
    if days > 0 and expires > now + timedelta(days=days):
        raise InvalidInput(
            "invalid expiry",
            fields={"expiresTimestamp": [f"at most {days} days ahead"]},
        )
    return expires


def check_url(url: str) -> str:
    """Where a leak was found, as its reporter says. A report is never refused for what
    its URL holds (the leak would go unrecorded): what could be a key in it is redacted
    (``tokens.redact_held``), and a commit's hash or a document's id is kept."""
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidInput("invalid url", fields={"url": ["at most 2048 printable characters"]})
    return redact_held(check_text(url, "url", "url", keys=False))


# -- decisions ---------------------------------------------------------------------------
def rotate_secret_key(
    state: AccountState, c: cmd.RotateSecretKey, rec: Recorder, _: Limits
) -> None:
    key = state.key(c.name)
    grace = check_grace(c.grace_seconds)
    if key.key_id != c.key_id:
        raise Conflict(f"API key {key.name!r} was replaced meanwhile; read it again and retry")
    if key.status(rec.now) == "expired":
        assert key.expires is not None
        raise Conflict(
            f"API key {key.name!r} expired at {format_seconds(key.expires)}: "
            "give it a new expiresTimestamp (PUT) before rotating it"
        )
    if key.previous_expires is not None and key.previous_expires <= rec.now:
        # The older grace ended before this rotation: say so before it is replaced.
        rec.record(
            ev.PreviousSecretExpired,
            name=key.name,
            key_id=key.key_id,
            expired_at=key.previous_expires,
        )
    rec.record(
        ev.SecretKeyRotated,
        name=key.name,
        key_id=key.key_id,
        key_hash=c.key_hash,
        previous_key_hash=key.key_hash if grace else "",
        previous_expires=to_millis(rec.now + timedelta(seconds=grace)) if grace else None,
    )


def update_secret_key(
    state: AccountState, c: cmd.UpdateSecretKey, rec: Recorder, limits: Limits
) -> None:
    key = state.key(c.name)
    if c.enabled is None and c.description is None and not c.change_expiry:
        raise InvalidInput(
            "nothing to change",
            fields={"_schema": ["give enabled, description and/or expiresTimestamp"]},
        )
    if c.enabled is not None and not isinstance(c.enabled, bool):
        raise InvalidInput("invalid enabled", fields={"enabled": ["true or false"]})
    description = None if c.description is None else check_description(c.description)
    expires = key.expires
    if c.change_expiry:
        expires = None if c.expires is None else check_expiry(c.expires, rec.now, limits)
    ids = {"name": key.name, "key_id": key.key_id}
    if description is not None and description != key.description:
        rec.record(
            ev.SecretKeyDescriptionChanged,
            **ids,
            description=description,
            previous_description=key.description,
        )
    if expires != key.expires:
        if key.status(rec.now) == "expired" and not key.expiry_recorded:
            assert key.expires is not None  # an expired key has an expiry
            rec.record(ev.SecretKeyExpired, **ids, expired_at=key.expires)
        rec.record(ev.SecretKeyExpiryChanged, **ids, expires=expires, previous_expires=key.expires)
    if c.enabled is not None and c.enabled != key.enabled:
        rec.record(ev.SecretKeyEnabled if c.enabled else ev.SecretKeyDisabled, **ids)


def record_expiries(state: AccountState, _c: cmd.RecordExpiries, rec: Recorder, _: Limits) -> None:
    """Every expiry and grace end at or before now that is not recorded yet; idempotent."""
    now = rec.now
    for key in sorted(state.keys.values(), key=lambda k: k.name):
        ids = {"name": key.name, "key_id": key.key_id}
        if key.previous_expires is not None and key.previous_expires <= now:
            rec.record(ev.PreviousSecretExpired, **ids, expired_at=key.previous_expires)
        if key.expires is not None and key.expires <= now and not key.expiry_recorded:
            rec.record(ev.SecretKeyExpired, **ids, expired_at=key.expires)
    ends = state.previous_account_key_expires
    if state.previous_account_key_id is not None and ends is not None and ends <= now:
        rec.record(
            ev.PreviousAccountKeyExpired, key_id=state.previous_account_key_id, expired_at=ends
        )


def revoke_leaked_secret(
    state: AccountState, c: cmd.RevokeLeakedSecret, rec: Recorder, _: Limits
) -> None:
    """Revoke the key whose current secret leaked, or end the grace of a leaked previous
    secret; nothing when that already happened (a repeated report)."""
    url = check_url(c.url)
    key = state.key_by_id(c.key_id)
    if key is None:
        return
    if c.key_hash == key.key_hash:
        user = state.user(key.user_id)
        rec.record(
            ev.SecretKeyRevoked,
            name=key.name,
            key_id=key.key_id,
            user_id=user.id,
            user_name=user.name,
            key_hash=key.key_hash,
            reason=LEAKED,
            url=url,
        )
    elif c.key_hash == key.previous_hash and key.previous_in_grace(rec.now) is not None:
        rec.record(
            ev.PreviousSecretRevoked,
            name=key.name,
            key_id=key.key_id,
            key_hash=c.key_hash,
            reason=LEAKED,
            url=url,
        )


def report_leaked_account_key(
    state: AccountState, c: cmd.ReportLeakedAccountKey, rec: Recorder, _: Limits
) -> None:
    url = check_url(c.url)
    live = {state.account_key_id, state.previous_account_key_id} - {None}
    if c.key_id in live and c.key_id not in dict(state.leaked_account_keys):
        rec.record(ev.AccountKeyReportedLeaked, key_id=c.key_id, url=url)


def rotate_account_key(
    state: AccountState, c: cmd.RotateAccountKey, rec: Recorder, _: Limits
) -> None:
    """A new account key; the current one stops now or after a grace period, and an
    older one still in its grace stops at once (at most one previous key lives)."""
    grace = check_grace(c.grace_seconds, "grace")
    if state.account_key_id is None:
        raise Conflict("the account has no account key yet: enable the API first")
    previous, ends = state.previous_account_key_id, state.previous_account_key_expires
    if previous is not None and ends is not None and ends <= rec.now:
        rec.record(ev.PreviousAccountKeyExpired, key_id=previous, expired_at=ends)
    elif previous is not None:
        rec.record(ev.AccountKeyRevoked, key_id=previous)
    if grace:
        rec.record(
            ev.AccountKeyRetired,
            key_id=state.account_key_id,
            expires=to_millis(rec.now + timedelta(seconds=grace)),
        )
    else:
        rec.record(ev.AccountKeyRevoked, key_id=state.account_key_id)
    rec.record(ev.AccountKeyIssued, key_id=c.key_id, key_hash=c.key_hash)
