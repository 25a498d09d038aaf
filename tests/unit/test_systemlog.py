"""How each event reads in the system log (``GET /v1/logs``)."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from keyledger.domain import events as ev
from keyledger.domain.systemlog import LogEntry, entry_for
from tests.unit.builders import ACTOR, SAMPLES

#: type name -> (resource, resourceId, type, description) for the sample of that type.
EXPECTED: dict[str, tuple[str, str, str, str]] = {
    "AccountRegistered": ("account", "acc-0001", "create", 'Account "Acme Corp" registered'),
    "ApiEnabled": ("account", "acc-0001", "update", "API access enabled"),
    "ApiDisabled": ("account", "acc-0001", "update", "API access disabled"),
    "AccountKeyIssued": ("account-key", "acc-0001", "create", "Account key issued"),
    "AccountKeyRevoked": ("account-key", "acc-0001", "delete", "Account key revoked"),
    "UserAdded": (
        "user",
        "u2",
        "create",
        'User "Zoë Ünicode" with email "zoe@example.com" added with role Viewer',
    ),
    "UserRenamed": ("user", "u2", "update", 'User "Zoë" renamed to "Zoe"'),
    "UserRoleChanged": (
        "user",
        "u2",
        "update",
        'Role of user "Zoe" changed from Viewer to Owner',
    ),
    "UserRemoved": ("user", "u2", "delete", 'User "Zoe" removed'),
    "SecretKeyCreated": (
        "api-key",
        "ci-deploy-key",
        "create",
        'API key "ci-deploy-key" created for user "Ada" ("10.2.5.0/24", "2001:db8::/32")',
    ),
    "SecretKeyDeleted": (
        "api-key",
        "ci-deploy-key",
        "delete",
        'API key "ci-deploy-key" of user "Ada" deleted',
    ),
    "SourceSubnetAllowed": (
        "api-key",
        "ci-deploy-key",
        "update",
        'Source subnet "10.2.5.0/24" allowed for API key "ci-deploy-key"',
    ),
    "SourceSubnetRemoved": (
        "api-key",
        "ci-deploy-key",
        "update",
        'Source subnet "10.2.5.0/24" removed from API key "ci-deploy-key"',
    ),
    "SecretKeyRotated": (
        "api-key",
        "ci-deploy-key",
        "update",
        'API key "ci-deploy-key" rotated; previous secret valid until 2019-03-16T14:26:02Z',
    ),
    "PreviousSecretExpired": (
        "api-key",
        "ci-deploy-key",
        "update",
        'Previous secret of API key "ci-deploy-key" expired at 2019-03-16T14:26:02Z '
        "(end of the rotation's grace period)",
    ),
    "PreviousSecretRevoked": (
        "api-key",
        "ci-deploy-key",
        "update",
        'Previous secret of API key "ci-deploy-key" revoked: reported leaked at '
        '"https://github.com/acme/app/blob/main/.env"',
    ),
    "SecretKeyDisabled": ("api-key", "ci-deploy-key", "update", 'API key "ci-deploy-key" disabled'),
    "SecretKeyEnabled": ("api-key", "ci-deploy-key", "update", 'API key "ci-deploy-key" enabled'),
    "SecretKeyDescriptionChanged": (
        "api-key",
        "ci-deploy-key",
        "update",
        'Description of API key "ci-deploy-key" set to "Deploys \\"web\\" from CI"',
    ),
    "SecretKeyExpiryChanged": (
        "api-key",
        "ci-deploy-key",
        "update",
        'Expiry of API key "ci-deploy-key" set to 2019-03-16T14:26:02Z',
    ),
    "SecretKeyExpired": (
        "api-key",
        "ci-deploy-key",
        "update",
        'API key "ci-deploy-key" expired at 2019-03-16T14:26:02Z',
    ),
    "SecretKeyRevoked": (
        "api-key",
        "ci-deploy-key",
        "delete",
        'API key "ci-deploy-key" of user "Ada" revoked: reported leaked at '
        '"https://github.com/acme/app/blob/main/.env"',
    ),
    "AccountKeyRetired": (
        "account-key",
        "acc-0001",
        "update",
        "Account key rotated; previous account key valid until 2019-03-16T14:26:02Z",
    ),
    "PreviousAccountKeyExpired": (
        "account-key",
        "acc-0001",
        "delete",
        "Previous account key expired at 2019-03-16T14:26:02Z (end of the rotation's grace period)",
    ),
    "AccountKeyReportedLeaked": (
        "account-key",
        "acc-0001",
        "update",
        'Account key reported leaked at "https://github.com/acme/app/blob/main/.env"; '
        "rotate it with a grace period",
    ),
}


def test_every_event_type_has_an_expected_entry() -> None:
    assert set(EXPECTED) == set(ev.EVENT_TYPES)


@pytest.mark.parametrize("type_name", sorted(EXPECTED))
def test_entry_names_resource_id_type_and_description(type_name: str) -> None:
    entry = entry_for(SAMPLES[type_name])
    assert (entry.resource, entry.resource_id, entry.type, entry.description) == EXPECTED[type_name]


@pytest.mark.parametrize("type_name", sorted(EXPECTED))
def test_entry_type_is_create_update_or_delete(type_name: str) -> None:
    assert entry_for(SAMPLES[type_name]).type in {"create", "update", "delete"}


def test_key_created_without_subnets_says_any_source() -> None:
    event = dataclasses.replace(SAMPLES["SecretKeyCreated"], allowed_source_ips=())
    assert entry_for(event).description.endswith("(any source)")


def test_entry_id_is_the_event_version() -> None:
    event = dataclasses.replace(SAMPLES["ApiEnabled"], version=42)
    assert entry_for(event).id == 42


def test_entry_time_is_iso8601_utc_to_the_second() -> None:
    event = dataclasses.replace(
        SAMPLES["ApiEnabled"], time=datetime(2019, 3, 15, 14, 26, 2, 987654, tzinfo=UTC)
    )
    time = entry_for(event).time
    assert time == "2019-03-15T14:26:02Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", time)


def test_entry_time_is_converted_to_utc() -> None:
    local = datetime(2019, 3, 15, 16, 26, 2, tzinfo=timezone(timedelta(hours=2)))
    event = dataclasses.replace(SAMPLES["ApiEnabled"], time=local)
    assert entry_for(event).time == "2019-03-15T14:26:02Z"


def test_entry_originator_is_the_actor_name() -> None:
    assert entry_for(SAMPLES["ApiEnabled"]).originator == ACTOR.name


def test_entry_api_key_name_is_the_actors_key() -> None:
    assert entry_for(SAMPLES["ApiEnabled"]).api_key_name == "owner-automation"


def test_entry_of_an_operator_change_has_no_api_key_name() -> None:
    event = dataclasses.replace(SAMPLES["ApiEnabled"], actor=ev.OPERATOR)
    entry = entry_for(event)
    assert entry.originator == "keyledger support"
    assert entry.api_key_name is None


@pytest.mark.parametrize("type_name", ["AccountKeyIssued", "SecretKeyCreated"])
def test_entry_never_shows_key_material(type_name: str) -> None:
    event = SAMPLES[type_name]
    entry = entry_for(event)
    key_hash = event.key_hash  # type: ignore[attr-defined]
    assert all(key_hash not in str(value) for value in dataclasses.astuple(entry))


def test_entry_for_an_unknown_event_type_is_an_error() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class SomethingHappened(ev.Event):
        TYPE = "SomethingHappened"

    event = SomethingHappened(account_id="a", version=1, time=datetime.now(UTC), actor=ACTOR)
    with pytest.raises(ValueError, match="SomethingHappened"):
        entry_for(event)


def test_log_entry_is_immutable() -> None:
    entry = entry_for(SAMPLES["ApiEnabled"])
    assert isinstance(entry, LogEntry)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.id = 1  # type: ignore[misc]


# -- values users supplied cannot rewrite the sentence ------------------------------------
def test_a_name_that_reads_as_a_sentence_stays_inside_its_quotes() -> None:
    name = "Bob' <x@y> added with role Owner. User 'Eve"
    event = dataclasses.replace(SAMPLES["UserAdded"], name=name, role="Viewer")
    assert entry_for(event).description == (
        'User "Bob\' <x@y> added with role Owner. User \'Eve" with email "zoe@example.com" '
        "added with role Viewer"
    )


def test_a_double_quote_in_a_value_shows_escaped_as_in_json() -> None:
    event = dataclasses.replace(SAMPLES["UserRemoved"], user_name='Eve "the Owner" \\ Admin')
    assert entry_for(event).description == 'User "Eve \\"the Owner\\" \\\\ Admin" removed'


@pytest.mark.parametrize("raw", ["\x1b[31mred\x1b[0m", "bell\x07", "\u202eenilno", "a\x7fb\x9bc"])
def test_control_and_bidi_characters_recorded_earlier_render_escaped(raw: str) -> None:
    event = dataclasses.replace(SAMPLES["UserAdded"], email=f'"{raw}"@example.com')
    description = entry_for(event).description
    assert description.isprintable()
    quoted_email = description.split(" with email ", 1)[1].rsplit(" added with role ", 1)[0]
    assert json.loads(quoted_email) == f'"{raw}"@example.com'


@pytest.mark.parametrize("type_name", sorted(EXPECTED))
def test_every_user_supplied_value_of_every_event_is_quoted(type_name: str) -> None:
    event = SAMPLES[type_name]
    description = entry_for(event).description
    supplied = [
        getattr(event, name)
        for name in ("name", "previous_name", "user_name", "email", "cidr")
        if hasattr(event, name)
    ]
    supplied += list(getattr(event, "allowed_source_ips", ()))
    for value in supplied:
        assert json.dumps(value, ensure_ascii=False) in description
