"""The lifecycle decisions: which events each command records, and what it refuses.

Pure: the state is folded in memory (``tests.unit.builders.History``) and the moment
of each decision is given (``Recorder.now``), so expiries need no waiting.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from keyledger.domain import commands as cmd
from keyledger.domain import events as ev
from keyledger.domain.account import AccountState, Limits, Recorder
from keyledger.domain.decisions import decide
from keyledger.domain.errors import Conflict, InvalidInput, KeyledgerError, NotFound
from keyledger.domain.lifecycle import parse_duration
from keyledger.domain.mapper import from_record, to_record
from tests.unit.builders import ACCOUNT_ID, ACTOR, NOW, OWNER_ID, History, fake_hash, registered

A = ACCOUNT_ID
KEY = "ci-deploy-key"


class Timed(History):
    """A ``History`` whose decisions happen at ``self.now``."""

    def __init__(self, limits: Limits | None = None):
        super().__init__(limits)
        self.now = NOW

    def run(self, command: cmd.Command, actor: ev.Actor = ACTOR) -> list[ev.Event]:
        new_events = decide(self.state, command, Recorder(self.state, self.now, actor), self.limits)
        self.state = self.state.evolve(new_events)
        self.events.extend(new_events)
        return new_events

    def key_id(self, name: str = KEY) -> str:
        return self.state.key(name).key_id

    def rotate(self, grace: int = 0, name: str = KEY) -> list[ev.Event]:
        key_id = self.key_id(name)
        return self.run(
            cmd.RotateSecretKey(
                account_id=A,
                name=name,
                key_id=key_id,
                key_hash=fake_hash(f"r{len(self.events)}"),
                grace_seconds=grace,
            )
        )

    def update(self, **changes: Any) -> list[ev.Event]:
        return self.run(cmd.UpdateSecretKey(account_id=A, name=KEY, **changes))

    def sweep(self) -> list[ev.Event]:
        return self.run(cmd.RecordExpiries(account_id=A))


def with_key(**create: Any) -> Timed:
    history = Timed(create.pop("limits", None))
    history.register()
    history.enable_api()
    history.run(
        cmd.CreateSecretKey(
            account_id=A,
            name=KEY,
            user_id=OWNER_ID,
            key_id="00bb000000000001",
            key_hash=fake_hash("first"),
            **create,
        )
    )
    return history


def types_of(events: list[ev.Event]) -> list[str]:
    return [e.TYPE for e in events]


def refused(history: Timed, command: cmd.Command, error: type[KeyledgerError]) -> KeyledgerError:
    """The command is refused with ``error`` and records nothing."""
    recorder = Recorder(history.state, history.now, ACTOR)
    with pytest.raises(error) as caught:
        decide(history.state, command, recorder, history.limits)
    assert recorder.events == []
    return caught.value


# -- rotation --------------------------------------------------------------------------------
def test_a_rotation_keeps_the_key_id_and_every_setting() -> None:
    history = with_key(description="CI", allowed_source_ips=("10.0.0.0/8",))
    before = history.state.key(KEY)
    [rotated] = history.rotate()
    after = history.state.key(KEY)
    assert isinstance(rotated, ev.SecretKeyRotated)
    assert after.key_id == before.key_id and after.key_hash != before.key_hash
    assert replace(after, key_hash=before.key_hash) == before
    assert after.previous_hash is None  # without grace the old secret stops at once


def test_a_rotation_with_grace_keeps_the_old_secret_until_then() -> None:
    history = with_key()
    old = history.state.key(KEY).key_hash
    [rotated] = history.rotate(grace=3600)
    key = history.state.key(KEY)
    assert isinstance(rotated, ev.SecretKeyRotated)
    assert rotated.previous_expires == NOW + timedelta(hours=1)
    assert (key.previous_hash, key.previous_expires) == (old, NOW + timedelta(hours=1))


def test_rotating_during_a_grace_leaves_at_most_one_previous_secret() -> None:
    history = with_key()
    history.rotate(grace=3600)
    middle = history.state.key(KEY).key_hash
    history.now += timedelta(minutes=5)
    history.rotate(grace=60)
    key = history.state.key(KEY)
    assert key.previous_hash == middle
    assert key.previous_expires == history.now + timedelta(seconds=60)


def test_a_grace_that_ended_unrecorded_is_recorded_before_the_next_rotation() -> None:
    history = with_key()
    history.rotate(grace=60)
    history.now += timedelta(minutes=2)
    assert types_of(history.rotate()) == ["PreviousSecretExpired", "SecretKeyRotated"]


@pytest.mark.parametrize("grace", [-1, 604_801, True, "60"])
def test_a_bad_grace_period_is_refused(grace: Any) -> None:
    history = with_key()
    command = cmd.RotateSecretKey(
        account_id=A, name=KEY, key_id=history.key_id(), key_hash="h", grace_seconds=grace
    )
    error = refused(history, command, InvalidInput)
    assert "gracePeriodSeconds" in error.fields


def test_the_longest_grace_is_seven_days() -> None:
    assert with_key().rotate(grace=604_800)


def test_an_expired_key_is_not_rotated() -> None:
    history = with_key(expires=NOW + timedelta(hours=1))
    history.now += timedelta(hours=1)
    command = cmd.RotateSecretKey(account_id=A, name=KEY, key_id=history.key_id(), key_hash="h")
    refused(history, command, Conflict)


def test_a_rotation_for_a_replaced_key_is_a_conflict() -> None:
    history = with_key()
    command = cmd.RotateSecretKey(account_id=A, name=KEY, key_id="00bb00000000ffff", key_hash="h")
    refused(history, command, Conflict)


def test_rotating_an_unknown_key_is_not_found() -> None:
    history = with_key()
    refused(
        history,
        cmd.RotateSecretKey(account_id=A, name="nope-nope-1", key_id="k", key_hash="h"),
        NotFound,
    )


# -- expiry ----------------------------------------------------------------------------------
def test_a_key_is_expired_from_the_instant_of_its_expiry() -> None:
    key = with_key(expires=NOW + timedelta(hours=1)).state.key(KEY)
    assert key.status(NOW + timedelta(minutes=59, seconds=59)) == "active"
    assert key.status(NOW + timedelta(hours=1)) == "expired"


def test_expired_wins_over_disabled() -> None:
    history = with_key(expires=NOW + timedelta(hours=1))
    history.update(enabled=False)
    key = history.state.key(KEY)
    assert key.status(NOW) == "disabled"
    assert key.status(NOW + timedelta(hours=2)) == "expired"


@pytest.mark.parametrize(
    ("expires", "limits", "message"),
    [
        (NOW, Limits(), "future"),
        (NOW - timedelta(days=1), Limits(), "future"),
        (NOW + timedelta(days=366, seconds=1), Limits(), "366 days"),
        (NOW + timedelta(days=31), Limits(max_key_lifetime_days=30), "30 days"),
        (datetime(2019, 6, 1), Limits(), "zone"),
    ],
)
def test_an_expiry_must_lie_ahead_within_the_lifetime(
    expires: datetime, limits: Limits, message: str
) -> None:
    history = with_key(limits=limits)
    error = refused(
        history,
        cmd.UpdateSecretKey(account_id=A, name=KEY, change_expiry=True, expires=expires),
        InvalidInput,
    )
    assert message in " ".join(error.fields["expiresTimestamp"])


def test_no_lifetime_limit_when_it_is_zero() -> None:
    history = with_key(limits=Limits(max_key_lifetime_days=0))
    history.update(change_expiry=True, expires=NOW + timedelta(days=3650))


def test_an_expiry_is_kept_to_the_millisecond_in_utc() -> None:
    elsewhere = (NOW + timedelta(days=1, microseconds=123_456)).astimezone(
        timezone(timedelta(hours=5))
    )
    history = with_key(expires=elsewhere)
    stored = history.state.key(KEY).expires
    assert stored == NOW + timedelta(days=1, microseconds=123_000)
    assert stored is not None and stored.tzinfo is UTC
    assert from_record(to_record(history.events[-1])) == history.events[-1]


def test_the_sweep_records_each_expiry_and_grace_end_once() -> None:
    history = with_key(expires=NOW + timedelta(hours=2))
    history.rotate(grace=60)
    assert history.sweep() == []
    history.now += timedelta(hours=2)
    recorded = history.sweep()
    assert types_of(recorded) == ["PreviousSecretExpired", "SecretKeyExpired"]
    assert recorded[1].expired_at == NOW + timedelta(hours=2)  # type: ignore[attr-defined]
    assert history.sweep() == []


def test_a_moved_expiry_is_recorded_again_when_it_comes() -> None:
    history = with_key(expires=NOW + timedelta(hours=1))
    history.now += timedelta(hours=1)
    history.sweep()
    history.update(change_expiry=True, expires=history.now + timedelta(hours=1))
    assert history.state.key(KEY).status(history.now) == "active"
    history.now += timedelta(hours=1)
    assert types_of(history.sweep()) == ["SecretKeyExpired"]


def test_reviving_an_expired_key_first_records_its_expiry() -> None:
    history = with_key(expires=NOW + timedelta(hours=1))
    history.now += timedelta(hours=2)
    changed = history.update(change_expiry=True, expires=None)
    assert types_of(changed) == ["SecretKeyExpired", "SecretKeyExpiryChanged"]


# -- disable, enable, describe ---------------------------------------------------------------
def test_disable_and_enable_are_events_and_repeating_them_records_nothing() -> None:
    history = with_key()
    assert types_of(history.update(enabled=False)) == ["SecretKeyDisabled"]
    assert history.update(enabled=False) == []
    assert types_of(history.update(enabled=True)) == ["SecretKeyEnabled"]


def test_one_update_may_change_several_things_at_once() -> None:
    history = with_key()
    changed = history.update(
        enabled=False, description="nightly", change_expiry=True, expires=NOW + timedelta(days=1)
    )
    assert types_of(changed) == [
        "SecretKeyDescriptionChanged",
        "SecretKeyExpiryChanged",
        "SecretKeyDisabled",
    ]


def test_an_update_with_nothing_is_refused() -> None:
    refused(with_key(), cmd.UpdateSecretKey(account_id=A, name=KEY), InvalidInput)


@pytest.mark.parametrize(
    "description",
    [
        "x" * 201,
        "line\nbreak",
        "tab\there",
        "nul\x00",
        "bidi \u202e override",
        "isolate \u2066x\u2069",
        "zero\u200bwidth",
        "line\u2028separator",
    ],
)
def test_a_bad_description_is_refused(description: str) -> None:
    error = refused(
        with_key(),
        cmd.UpdateSecretKey(account_id=A, name=KEY, description=description),
        InvalidInput,
    )
    assert "description" in error.fields


@pytest.mark.parametrize("description", ["", "x" * 200, "Zoë's deploy key (CI) — nightly"])
def test_a_good_description_is_accepted(description: str) -> None:
    history = with_key(description="before")
    history.update(description=description)
    assert history.state.key(KEY).description == description


def test_an_enabled_that_is_not_a_boolean_is_refused() -> None:
    refused(with_key(), cmd.UpdateSecretKey(account_id=A, name=KEY, enabled=1), InvalidInput)  # type: ignore[arg-type]


# -- leaks -----------------------------------------------------------------------------------
def test_a_leaked_current_secret_revokes_the_key_once() -> None:
    history = with_key()
    leaked = history.state.key(KEY)
    command = cmd.RevokeLeakedSecret(
        account_id=A, key_id=leaked.key_id, key_hash=leaked.key_hash, url="https://x"
    )
    [revoked] = history.run(command)
    assert isinstance(revoked, ev.SecretKeyRevoked)
    assert (revoked.reason, revoked.url, revoked.key_hash) == (
        "leaked",
        "https://x",
        leaked.key_hash,
    )
    assert KEY not in history.state.keys
    assert history.run(command) == []


def test_a_leaked_previous_secret_only_loses_its_grace() -> None:
    history = with_key()
    old = history.state.key(KEY).key_hash
    history.rotate(grace=3600)
    command = cmd.RevokeLeakedSecret(account_id=A, key_id=history.key_id(), key_hash=old, url="u")
    assert types_of(history.run(command)) == ["PreviousSecretRevoked"]
    key = history.state.key(KEY)
    assert key.previous_hash is None and key.status(history.now) == "active"
    assert history.run(command) == []


def test_a_report_of_a_secret_no_longer_live_records_nothing() -> None:
    history = with_key()
    old = history.state.key(KEY).key_hash
    history.rotate()
    command = cmd.RevokeLeakedSecret(account_id=A, key_id=history.key_id(), key_hash=old, url="u")
    assert history.run(command) == []


def test_a_report_of_a_previous_secret_whose_grace_ended_records_nothing() -> None:
    history = with_key()
    old = history.state.key(KEY).key_hash
    history.rotate(grace=60)
    history.now += timedelta(minutes=2)  # ended, not yet recorded by a sweep
    command = cmd.RevokeLeakedSecret(account_id=A, key_id=history.key_id(), key_hash=old, url="u")
    assert history.run(command) == []


def test_a_leaked_account_key_is_recorded_once_and_keeps_working() -> None:
    history = with_key()
    key_id = history.state.account_key_id
    assert key_id is not None
    command = cmd.ReportLeakedAccountKey(account_id=A, key_id=key_id, url="https://x")
    assert types_of(history.run(command)) == ["AccountKeyReportedLeaked"]
    assert history.run(command) == []
    assert history.state.account_key_id == key_id
    assert dict(history.state.leaked_account_keys) == {key_id: "https://x"}


def test_a_bad_url_in_a_report_is_refused() -> None:
    history = with_key()
    command = cmd.ReportLeakedAccountKey(account_id=A, key_id="k", url="x\u202ey")
    refused(history, command, InvalidInput)


# -- account key rotation --------------------------------------------------------------------
def rotate_account_key(history: Timed, key_id: str, grace: int = 0) -> list[ev.Event]:
    return history.run(
        cmd.RotateAccountKey(
            account_id=A, key_id=key_id, key_hash=fake_hash(key_id), grace_seconds=grace
        )
    )


def test_an_account_key_rotation_without_grace_is_as_before() -> None:
    history = with_key()
    assert types_of(rotate_account_key(history, "00aa000000000002")) == [
        "AccountKeyRevoked",
        "AccountKeyIssued",
    ]


def test_an_account_key_rotation_with_grace_retires_the_old_key_until_then() -> None:
    history = with_key()
    old = history.state.account_key_id
    events = rotate_account_key(history, "00aa000000000002", grace=86400)
    assert types_of(events) == ["AccountKeyRetired", "AccountKeyIssued"]
    state = history.state
    assert state.previous_account_key_id == old
    assert state.previous_account_key_expires == NOW + timedelta(days=1)
    assert state.account_key_id == "00aa000000000002"


def test_a_second_account_key_rotation_ends_the_older_grace_at_once() -> None:
    history = with_key()
    rotate_account_key(history, "00aa000000000002", grace=86400)
    events = rotate_account_key(history, "00aa000000000003", grace=86400)
    assert types_of(events) == ["AccountKeyRevoked", "AccountKeyRetired", "AccountKeyIssued"]
    assert history.state.previous_account_key_id == "00aa000000000002"


def test_the_end_of_an_account_key_grace_is_recorded_once() -> None:
    history = with_key()
    rotate_account_key(history, "00aa000000000002", grace=60)
    history.now += timedelta(seconds=60)
    assert types_of(history.sweep()) == ["PreviousAccountKeyExpired"]
    assert history.state.previous_account_key_id is None
    assert history.sweep() == []


# -- durations -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("24h", 86400), ("7d", 604800), ("0s", 0)]
)
def test_durations_read_as_seconds(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "1w", "-5m", "1.5h", "24 h", "24H", "٣h", "1e3s"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


# -- old logs ---------------------------------------------------------------------------------
def test_a_schema_1_key_creation_still_decodes_without_description_or_expiry() -> None:
    history = with_key()
    record = to_record(history.events[-1])
    data = json.loads(record["data"])
    del data["description"], data["expires"]
    old = {**record, "schema": "1", "data": json.dumps(data)}
    event = from_record(old)
    assert isinstance(event, ev.SecretKeyCreated)
    assert (event.description, event.expires) == ("", None)
    assert to_record(event)["schema"] == "2"


def test_any_lifecycle_sequence_folds_to_the_same_state() -> None:
    history = with_key(expires=NOW + timedelta(hours=3))
    history.rotate(grace=600)
    history.update(enabled=False, description="x")
    history.now += timedelta(hours=4)
    history.sweep()
    rotate_account_key(history, "00aa000000000002", grace=60)
    assert AccountState(id=A).evolve(history.events) == history.state
    assert registered().state.keys == {}
    assert all(e.time.tzinfo is UTC or e.time.utcoffset() == timedelta(0) for e in history.events)
