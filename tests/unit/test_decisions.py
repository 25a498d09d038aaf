"""Account decisions: which events each command produces, and what it refuses.

Every test drives the pure core the way the application service does: the state
is folded from the events earlier decisions produced (``tests.unit.builders``).
"""

from __future__ import annotations

import pytest

from keyledger.domain import commands as cmd
from keyledger.domain import events as ev
from keyledger.domain.account import AccountState, Limits, Recorder
from keyledger.domain.decisions import DECISIONS, decide
from keyledger.domain.errors import Conflict, InvalidInput, LimitExceeded, NotFound
from keyledger.domain.roles import Role
from keyledger.domain.text import unprintable_reason
from tests.unit.builders import (
    ACCOUNT_ID,
    ACTOR,
    NOW,
    OWNER_EMAIL,
    OWNER_ID,
    OWNER_NAME,
    History,
    fake_hash,
    registered,
)

KEY = "ci-deploy-key"


def with_api() -> History:
    history = registered()
    history.enable_api()
    return history


def with_key(*subnets: str, user_id: str = OWNER_ID) -> History:
    history = registered()
    if user_id != OWNER_ID:
        history.add_user(user_id, role="Viewer")
    history.create_key(KEY, user_id=user_id, subnets=subnets)
    return history


def types_of(events: list[ev.Event]) -> list[str]:
    return [event.TYPE for event in events]


# -- the decide entry point --------------------------------------------------------------


def test_every_command_type_has_a_decision() -> None:
    assert set(DECISIONS) == set(cmd.Command.__subclasses__())


NON_REGISTER_COMMANDS = [
    cmd.EnableApi(account_id=ACCOUNT_ID, key_id="k", key_hash="h"),
    cmd.DisableApi(account_id=ACCOUNT_ID),
    cmd.RotateAccountKey(account_id=ACCOUNT_ID, key_id="k", key_hash="h"),
    cmd.AddUser(account_id=ACCOUNT_ID, user_id="u2", name="Bo", email="bo@x.io", role="Viewer"),
    cmd.UpdateUser(account_id=ACCOUNT_ID, user_id=OWNER_ID, name="Bo"),
    cmd.RemoveUser(account_id=ACCOUNT_ID, user_id=OWNER_ID),
    cmd.CreateSecretKey(
        account_id=ACCOUNT_ID, name=KEY, user_id=OWNER_ID, key_id="k", key_hash="h"
    ),
    cmd.DeleteSecretKey(account_id=ACCOUNT_ID, name=KEY),
    cmd.AllowSourceSubnet(account_id=ACCOUNT_ID, name=KEY, cidr="10.0.0.0/8"),
    cmd.RemoveSourceSubnet(account_id=ACCOUNT_ID, name=KEY, cidr="10.0.0.0/8"),
    cmd.RotateSecretKey(account_id=ACCOUNT_ID, name=KEY, key_id="k", key_hash="h"),
    cmd.UpdateSecretKey(account_id=ACCOUNT_ID, name=KEY, enabled=False),
    cmd.RecordExpiries(account_id=ACCOUNT_ID),
    cmd.RevokeLeakedSecret(account_id=ACCOUNT_ID, key_id="k", key_hash="h", url="https://x"),
    cmd.ReportLeakedAccountKey(account_id=ACCOUNT_ID, key_id="k", url="https://x"),
]


def test_the_not_found_list_covers_every_command_but_register() -> None:
    covered = {type(c) for c in NON_REGISTER_COMMANDS}
    assert covered == set(DECISIONS) - {cmd.RegisterAccount}


@pytest.mark.parametrize("command", NON_REGISTER_COMMANDS, ids=lambda c: type(c).__name__)
def test_any_command_on_a_non_existent_account_is_not_found(command: cmd.Command) -> None:
    state = AccountState(id=ACCOUNT_ID)
    recorder = Recorder(state, NOW, ACTOR)
    with pytest.raises(NotFound):
        decide(state, command, recorder, Limits())
    assert recorder.events == []


def test_events_are_numbered_on_from_the_state_version() -> None:
    history = registered()
    assert [e.version for e in history.events] == [1, 2]
    assert [e.version for e in history.enable_api()] == [3, 4]
    assert history.state.version == 4


def test_events_carry_account_time_and_actor() -> None:
    events = registered().events
    assert all(e.account_id == ACCOUNT_ID for e in events)
    assert all(e.time == NOW for e in events)
    assert all(e.actor == ACTOR for e in events)


def test_evolve_refuses_an_event_out_of_sequence() -> None:
    history = registered()
    skipped = ev.ApiEnabled(account_id=ACCOUNT_ID, version=4, time=NOW, actor=ACTOR)
    with pytest.raises(ValueError, match="version"):
        history.state.evolve([skipped])


def test_evolve_leaves_the_original_state_untouched() -> None:
    history = registered()
    before = history.state
    users_before = dict(before.users)
    history.add_user("u2")
    assert before.users == users_before
    assert before.version == 2


def test_replaying_every_event_gives_the_same_state() -> None:
    history = with_key("10.2.5.0/24")
    history.add_user("u2", role="Logs Viewer")
    assert AccountState(id=ACCOUNT_ID).evolve(history.events) == history.state


# -- register account -------------------------------------------------------------------


def test_register_account_records_the_account_and_its_owner() -> None:
    history = History()
    events = history.register("Acme Corp")
    assert types_of(events) == ["AccountRegistered", "UserAdded"]
    registered_event, owner = events
    assert isinstance(registered_event, ev.AccountRegistered)
    assert (registered_event.name, registered_event.owner_user_id) == ("Acme Corp", OWNER_ID)
    assert isinstance(owner, ev.UserAdded)
    assert (owner.user_id, owner.name, owner.email, owner.role) == (
        OWNER_ID,
        OWNER_NAME,
        OWNER_EMAIL,
        "Owner",
    )


def test_registered_account_exists_with_api_disabled_and_one_owner() -> None:
    state = registered().state
    assert state.exists
    assert state.name == "Acme Corp"
    assert state.created == NOW
    assert state.api_enabled is False
    assert state.account_key_id is None
    assert [u.id for u in state.owners()] == [OWNER_ID]


def test_registering_an_existing_account_is_a_conflict() -> None:
    history = registered()
    with pytest.raises(Conflict):
        history.register("Acme Again")


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "line\nbreak"])
def test_register_account_with_invalid_name_is_invalid_input(name: str) -> None:
    with pytest.raises(InvalidInput):
        History().register(name)


def test_register_account_with_invalid_owner_email_is_invalid_input() -> None:
    history = History()
    with pytest.raises(InvalidInput):
        history.run(
            cmd.RegisterAccount(
                account_id=ACCOUNT_ID,
                name="Acme",
                owner_user_id=OWNER_ID,
                owner_name="Ada",
                owner_email="not-an-email",
            )
        )


# -- enable, disable, rotate ------------------------------------------------------------


def test_enabling_the_api_issues_the_account_key() -> None:
    history = registered()
    events = history.enable_api(key_id="00aa000000000001")
    assert types_of(events) == ["ApiEnabled", "AccountKeyIssued"]
    issued = events[1]
    assert isinstance(issued, ev.AccountKeyIssued)
    assert (issued.key_id, issued.key_hash) == ("00aa000000000001", fake_hash("00aa000000000001"))
    assert history.state.api_enabled is True
    assert history.state.account_key_id == "00aa000000000001"
    assert history.state.account_key_hash == fake_hash("00aa000000000001")


def test_enabling_the_api_twice_is_a_conflict() -> None:
    history = with_api()
    with pytest.raises(Conflict):
        history.enable_api(key_id="00aa000000000002")


def test_disabling_the_api_keeps_the_account_key() -> None:
    history = with_api()
    assert types_of(history.disable_api()) == ["ApiDisabled"]
    assert history.state.api_enabled is False
    assert history.state.account_key_id == "00aa000000000001"


def test_disabling_a_disabled_api_is_a_conflict() -> None:
    with pytest.raises(Conflict):
        registered().disable_api()


def test_re_enabling_the_api_issues_no_new_key() -> None:
    history = with_api()
    history.disable_api()
    events = history.enable_api(key_id="00aa000000000002")
    assert types_of(events) == ["ApiEnabled"]
    assert history.state.account_key_id == "00aa000000000001"


def test_rotating_without_an_account_key_is_a_conflict() -> None:
    history = registered()
    with pytest.raises(Conflict):
        history.run(cmd.RotateAccountKey(account_id=ACCOUNT_ID, key_id="new", key_hash="h"))


def test_rotating_revokes_the_old_key_and_issues_the_new_one() -> None:
    history = with_api()
    events = history.run(
        cmd.RotateAccountKey(account_id=ACCOUNT_ID, key_id="00aa000000000002", key_hash="h2")
    )
    assert types_of(events) == ["AccountKeyRevoked", "AccountKeyIssued"]
    revoked, issued = events
    assert isinstance(revoked, ev.AccountKeyRevoked)
    assert isinstance(issued, ev.AccountKeyIssued)
    assert revoked.key_id == "00aa000000000001"
    assert issued.key_id == "00aa000000000002"
    assert (history.state.account_key_id, history.state.account_key_hash) == (
        "00aa000000000002",
        "h2",
    )


# -- users ------------------------------------------------------------------------------


def test_adding_a_user_records_name_email_and_role() -> None:
    history = registered()
    events = history.add_user("u2", role="Logs Viewer", name="Bo Baker", email="bo@example.com")
    assert types_of(events) == ["UserAdded"]
    added = events[0]
    assert isinstance(added, ev.UserAdded)
    assert (added.user_id, added.name, added.email, added.role) == (
        "u2",
        "Bo Baker",
        "bo@example.com",
        "Logs Viewer",
    )
    assert history.state.user("u2").role is Role.LOGS_VIEWER


def test_user_name_is_stored_without_surrounding_spaces() -> None:
    history = registered()
    history.add_user("u2", name="  Bo Baker  ")
    assert history.state.user("u2").name == "Bo Baker"


@pytest.mark.parametrize("email", [OWNER_EMAIL, OWNER_EMAIL.upper()])
def test_adding_a_user_with_an_email_already_in_the_account_is_a_conflict(email: str) -> None:
    history = registered()
    with pytest.raises(Conflict):
        history.add_user("u2", email=email)


@pytest.mark.parametrize("role", ["Admin", "owner", "OWNER", "", "Viewer ", "Logs_Viewer"])
def test_adding_a_user_with_an_invalid_role_is_invalid_input(role: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        registered().add_user("u2", role=role)
    assert "role" in caught.value.fields


@pytest.mark.parametrize(
    "email",
    ["", "bo", "bo@", "@example.com", "bo@@example.com", "bo baker@example.com", "b@" + "e" * 260],
)
def test_adding_a_user_with_an_invalid_email_is_invalid_input(email: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        registered().add_user("u2", email=email)
    assert "email" in caught.value.fields


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "tab\there", "bell\x07"])
def test_adding_a_user_with_an_invalid_name_is_invalid_input(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        registered().add_user("u2", name=name)
    assert "name" in caught.value.fields


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_a_user_may_be_added_in_any_role(role: str) -> None:
    history = registered()
    history.add_user("u2", role=role)
    assert history.state.user("u2").role.value == role


def test_adding_a_user_beyond_the_user_limit_is_refused() -> None:
    history = registered(Limits(users_per_account=2))
    history.add_user("u2")
    with pytest.raises(LimitExceeded):
        history.add_user("u3")


def test_renaming_a_user_records_the_previous_name() -> None:
    history = registered()
    history.add_user("u2", name="Bo")
    events = history.run(cmd.UpdateUser(account_id=ACCOUNT_ID, user_id="u2", name="Bo Baker"))
    assert types_of(events) == ["UserRenamed"]
    renamed = events[0]
    assert isinstance(renamed, ev.UserRenamed)
    assert (renamed.name, renamed.previous_name) == ("Bo Baker", "Bo")
    assert history.state.user("u2").name == "Bo Baker"


def test_changing_a_role_records_the_previous_role() -> None:
    history = registered()
    history.add_user("u2", role="Viewer")
    events = history.run(cmd.UpdateUser(account_id=ACCOUNT_ID, user_id="u2", role="Owner"))
    assert types_of(events) == ["UserRoleChanged"]
    changed = events[0]
    assert isinstance(changed, ev.UserRoleChanged)
    assert (changed.role, changed.previous_role) == ("Owner", "Viewer")
    assert history.state.user("u2").role is Role.OWNER


def test_renaming_and_changing_role_together_records_both() -> None:
    history = registered()
    history.add_user("u2", name="Bo", role="Viewer")
    events = history.run(
        cmd.UpdateUser(account_id=ACCOUNT_ID, user_id="u2", name="Bo Baker", role="Member")
    )
    assert types_of(events) == ["UserRenamed", "UserRoleChanged"]
    changed = events[1]
    assert isinstance(changed, ev.UserRoleChanged)
    assert changed.user_name == "Bo Baker"


def test_updating_a_user_to_what_it_already_is_records_nothing() -> None:
    history = registered()
    history.add_user("u2", name="Bo", role="Viewer")
    assert (
        history.run(cmd.UpdateUser(account_id=ACCOUNT_ID, user_id="u2", name="Bo", role="Viewer"))
        == []
    )


def test_updating_a_user_with_nothing_to_change_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        registered().run(cmd.UpdateUser(account_id=ACCOUNT_ID, user_id=OWNER_ID))


def test_updating_an_unknown_user_is_not_found() -> None:
    with pytest.raises(NotFound):
        registered().run(cmd.UpdateUser(account_id=ACCOUNT_ID, user_id="ghost", name="Casper"))


def test_updating_a_user_to_an_invalid_role_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        registered().run(cmd.UpdateUser(account_id=ACCOUNT_ID, user_id=OWNER_ID, role="King"))


def test_renaming_a_user_to_an_invalid_name_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        registered().run(cmd.UpdateUser(account_id=ACCOUNT_ID, user_id=OWNER_ID, name="  "))


@pytest.mark.parametrize("role", ["Viewer", "Member", "Logs Viewer", "Manager", "Billing Admin"])
def test_the_last_owner_cannot_be_demoted(role: str) -> None:
    with pytest.raises(Conflict):
        registered().run(cmd.UpdateUser(account_id=ACCOUNT_ID, user_id=OWNER_ID, role=role))


def test_an_owner_can_be_demoted_while_another_owner_remains() -> None:
    history = registered()
    history.add_user("u2", role="Owner")
    history.run(cmd.UpdateUser(account_id=ACCOUNT_ID, user_id=OWNER_ID, role="Viewer"))
    assert [u.id for u in history.state.owners()] == ["u2"]


def test_the_last_owner_may_still_be_renamed() -> None:
    history = registered()
    history.run(cmd.UpdateUser(account_id=ACCOUNT_ID, user_id=OWNER_ID, name="Ada Lovelace"))
    assert history.state.user(OWNER_ID).name == "Ada Lovelace"


def test_removing_a_user_deletes_all_its_keys_before_removing_it() -> None:
    history = registered()
    history.add_user("u2", name="Bo", role="Viewer")
    history.create_key("zz-second-key", user_id="u2")
    history.create_key("aa-first-key-", user_id="u2")
    history.create_key("owner-own-key", user_id=OWNER_ID)
    events = history.run(cmd.RemoveUser(account_id=ACCOUNT_ID, user_id="u2"))
    assert types_of(events) == ["SecretKeyDeleted", "SecretKeyDeleted", "UserRemoved"]
    deleted = [e for e in events if isinstance(e, ev.SecretKeyDeleted)]
    assert [e.name for e in deleted] == ["aa-first-key-", "zz-second-key"]
    assert all((e.user_id, e.user_name) == ("u2", "Bo") for e in deleted)
    removed = events[-1]
    assert isinstance(removed, ev.UserRemoved)
    assert (removed.user_id, removed.user_name) == ("u2", "Bo")
    assert "u2" not in history.state.users
    assert set(history.state.keys) == {"owner-own-key"}


def test_removing_a_user_without_keys_records_only_the_removal() -> None:
    history = registered()
    history.add_user("u2")
    assert types_of(history.run(cmd.RemoveUser(account_id=ACCOUNT_ID, user_id="u2"))) == [
        "UserRemoved"
    ]


def test_the_last_owner_cannot_be_removed() -> None:
    with pytest.raises(Conflict):
        registered().run(cmd.RemoveUser(account_id=ACCOUNT_ID, user_id=OWNER_ID))


def test_an_owner_can_be_removed_while_another_owner_remains() -> None:
    history = registered()
    history.add_user("u2", role="Owner")
    history.run(cmd.RemoveUser(account_id=ACCOUNT_ID, user_id=OWNER_ID))
    assert list(history.state.users) == ["u2"]


def test_removing_an_unknown_user_is_not_found() -> None:
    with pytest.raises(NotFound):
        registered().run(cmd.RemoveUser(account_id=ACCOUNT_ID, user_id="ghost"))


# -- secret keys ------------------------------------------------------------------------


def test_creating_a_key_records_name_user_hash_and_subnets() -> None:
    history = registered()
    events = history.create_key(KEY, subnets=("10.2.5.0/24",), key_id="00bb000000000001")
    assert types_of(events) == ["SecretKeyCreated"]
    created = events[0]
    assert isinstance(created, ev.SecretKeyCreated)
    assert (created.name, created.key_id, created.user_id, created.user_name) == (
        KEY,
        "00bb000000000001",
        OWNER_ID,
        OWNER_NAME,
    )
    assert created.key_hash == fake_hash("00bb000000000001")
    assert created.allowed_source_ips == ("10.2.5.0/24",)
    key = history.state.key(KEY)
    assert (key.user_id, key.created, key.allowed_source_ips) == (OWNER_ID, NOW, ("10.2.5.0/24",))


@pytest.mark.parametrize(
    "name", ["a" * 10, "Z" * 50, "ci-deploy_key-01", "0123456789", "-_-_-_-_-_", "ABCdef_123-x"]
)
def test_key_names_of_10_to_50_letters_digits_dashes_underscores_are_accepted(name: str) -> None:
    history = registered()
    history.create_key(name)
    assert name in history.state.keys


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a" * 9,
        "a" * 51,
        "has space 1",
        "dotted.name",
        "slash/name1",
        "colon:name1",
        "percent%name",
        "\u00fcmlautname1",
        "cyrillic\u0430name",
        "trailing-nl\n",
        "nul\x00inside1",
    ],
)
def test_invalid_key_names_are_invalid_input(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        registered().create_key(name)
    assert "name" in caught.value.fields


def test_key_names_are_unique_in_the_account() -> None:
    history = registered()
    history.add_user("u2", role="Viewer")
    history.create_key(KEY, user_id=OWNER_ID)
    with pytest.raises(Conflict):
        history.create_key(KEY, user_id="u2")


def test_creating_a_key_for_an_unknown_user_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as caught:
        registered().create_key(KEY, user_id="ghost")
    assert "userId" in caught.value.fields


@pytest.mark.parametrize("role", ["Owner", "Viewer", "Logs Viewer"])
def test_users_in_key_holder_roles_may_hold_keys(role: str) -> None:
    history = registered()
    history.add_user("u2", role=role)
    history.create_key(KEY, user_id="u2")
    assert history.state.key(KEY).user_id == "u2"


@pytest.mark.parametrize("role", ["Member", "Manager", "Billing Admin"])
def test_users_in_other_roles_may_not_hold_keys(role: str) -> None:
    history = registered()
    history.add_user("u2", role=role)
    with pytest.raises(InvalidInput) as caught:
        history.create_key(KEY, user_id="u2")
    assert "userId" in caught.value.fields


def test_key_subnets_are_canonicalised_and_deduplicated_in_order() -> None:
    history = registered()
    events = history.create_key(
        KEY, subnets=("2001:DB8::/32", "10.2.5.0/24", "2001:db8::/32", "10.2.5.0/24")
    )
    created = events[0]
    assert isinstance(created, ev.SecretKeyCreated)
    assert created.allowed_source_ips == ("2001:db8::/32", "10.2.5.0/24")


@pytest.mark.parametrize("subnet", ["10.2.5.7/24", "10.0.0.0/08", "10.0.0.0", "0.0.0.0/0", "::/0"])
def test_creating_a_key_with_an_invalid_subnet_is_invalid_input(subnet: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        registered().create_key(KEY, subnets=("10.2.5.0/24", subnet))
    assert "allowedSourceIps" in caught.value.fields


def test_match_all_subnet_is_accepted_when_the_limits_allow_it() -> None:
    history = registered(Limits(allow_match_all_subnets=True))
    history.create_key(KEY, subnets=("0.0.0.0/0",))
    assert history.state.key(KEY).allowed_source_ips == ("0.0.0.0/0",)


def test_creating_a_key_with_too_many_subnets_is_invalid_input() -> None:
    history = registered(Limits(subnets_per_key=2))
    with pytest.raises(InvalidInput) as caught:
        history.create_key(KEY, subnets=("10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16"))
    assert "allowedSourceIps" in caught.value.fields


def test_creating_a_key_with_exactly_the_subnet_limit_is_accepted() -> None:
    history = registered(Limits(subnets_per_key=2))
    history.create_key(KEY, subnets=("10.0.0.0/8", "192.0.2.0/24"))
    assert len(history.state.key(KEY).allowed_source_ips) == 2


def test_creating_a_key_beyond_the_keys_per_account_limit_is_refused() -> None:
    history = registered(Limits(keys_per_account=2))
    history.create_key("first-key-01")
    history.create_key("second-key-2")
    with pytest.raises(LimitExceeded):
        history.create_key("third-key-03")


def test_deleting_a_key_frees_room_under_the_keys_limit() -> None:
    history = registered(Limits(keys_per_account=1))
    history.create_key("first-key-01")
    history.run(cmd.DeleteSecretKey(account_id=ACCOUNT_ID, name="first-key-01"))
    history.create_key("second-key-2")
    assert set(history.state.keys) == {"second-key-2"}


def test_limit_exceeded_is_a_conflict() -> None:
    assert issubclass(LimitExceeded, Conflict)


def test_deleting_a_key_records_its_name_id_and_user() -> None:
    history = with_key(user_id="u2")
    key_id = history.state.key(KEY).key_id
    events = history.run(cmd.DeleteSecretKey(account_id=ACCOUNT_ID, name=KEY))
    assert types_of(events) == ["SecretKeyDeleted"]
    deleted = events[0]
    assert isinstance(deleted, ev.SecretKeyDeleted)
    assert (deleted.name, deleted.key_id, deleted.user_id, deleted.user_name) == (
        KEY,
        key_id,
        "u2",
        "User u2",
    )
    assert KEY not in history.state.keys


def test_deleting_an_unknown_key_is_not_found() -> None:
    with pytest.raises(NotFound):
        registered().run(cmd.DeleteSecretKey(account_id=ACCOUNT_ID, name=KEY))


def test_a_deleted_key_name_can_be_used_again() -> None:
    history = with_key()
    history.run(cmd.DeleteSecretKey(account_id=ACCOUNT_ID, name=KEY))
    history.create_key(KEY, key_id="00cc000000000001")
    assert history.state.key(KEY).key_id == "00cc000000000001"


# -- source subnets ---------------------------------------------------------------------


def allow(history: History, cidr: str, name: str = KEY) -> list[ev.Event]:
    return history.run(cmd.AllowSourceSubnet(account_id=ACCOUNT_ID, name=name, cidr=cidr))


def remove(history: History, cidr: str, name: str = KEY) -> list[ev.Event]:
    return history.run(cmd.RemoveSourceSubnet(account_id=ACCOUNT_ID, name=name, cidr=cidr))


def test_allowing_a_subnet_records_it_in_canonical_form() -> None:
    history = with_key("10.2.5.0/24")
    events = allow(history, "2001:DB8::/32")
    assert types_of(events) == ["SourceSubnetAllowed"]
    allowed = events[0]
    assert isinstance(allowed, ev.SourceSubnetAllowed)
    assert (allowed.name, allowed.cidr) == (KEY, "2001:db8::/32")
    assert allowed.key_id == history.state.key(KEY).key_id
    assert history.state.key(KEY).allowed_source_ips == ("10.2.5.0/24", "2001:db8::/32")


def test_allowing_a_subnet_already_allowed_is_a_conflict() -> None:
    history = with_key("2001:db8::/32")
    with pytest.raises(Conflict):
        allow(history, "2001:DB8::/32")


def test_allowing_a_subnet_on_an_unknown_key_is_not_found() -> None:
    with pytest.raises(NotFound):
        allow(registered(), "10.0.0.0/8")


@pytest.mark.parametrize("cidr", ["10.2.5.7/24", "10.0.0.0/08", "junk", "0.0.0.0/0"])
def test_allowing_an_invalid_subnet_is_invalid_input(cidr: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        allow(with_key(), cidr)
    assert "cidr" in caught.value.fields


def test_allowing_a_subnet_beyond_the_limit_is_refused() -> None:
    history = History(Limits(subnets_per_key=1))
    history.register()
    history.create_key(KEY, subnets=("10.0.0.0/8",))
    with pytest.raises(LimitExceeded):
        allow(history, "192.0.2.0/24")


def test_removing_a_subnet_records_it() -> None:
    history = with_key("10.2.5.0/24", "192.0.2.0/24")
    events = remove(history, "10.2.5.0/24")
    assert types_of(events) == ["SourceSubnetRemoved"]
    removed = events[0]
    assert isinstance(removed, ev.SourceSubnetRemoved)
    assert (removed.name, removed.cidr) == (KEY, "10.2.5.0/24")
    assert history.state.key(KEY).allowed_source_ips == ("192.0.2.0/24",)


def test_removing_a_subnet_accepts_a_non_canonical_spelling() -> None:
    history = with_key("2001:db8::/32")
    remove(history, "2001:DB8:0::/32")
    assert history.state.key(KEY).allowed_source_ips == ()


def test_removing_an_absent_subnet_is_not_found() -> None:
    with pytest.raises(NotFound):
        remove(with_key("10.2.5.0/24"), "192.0.2.0/24")


def test_removing_a_subnet_from_an_unknown_key_is_not_found() -> None:
    with pytest.raises(NotFound):
        remove(registered(), "10.0.0.0/8")


@pytest.mark.parametrize("cidr", ["10.2.5.7/24", "junk", ""])
def test_removing_an_invalid_subnet_is_invalid_input(cidr: str) -> None:
    with pytest.raises(InvalidInput):
        remove(with_key("10.2.5.0/24"), cidr)


# -- text fields refuse control, format and bidi characters --------------------------------
#: What a terminal or a bidi-aware renderer acts on: ESC, BEL, DEL, C1 CSI, RLO, RLI, LRM,
#: ALM, zero-width space, BOM, a tag character and a no-break space.
ACTIVE = ["\x1b", "\x07", "\x7f", "\x9b", "\u202e", "\u2067", "\u200e", "\u061c", "\u200b"]
ACTIVE += ["\ufeff", "\U000e0041", "\u00a0"]


def refused_field(history: History, command: cmd.Command) -> tuple[str, list[str]]:
    before = history.state
    with pytest.raises(InvalidInput) as caught:
        history.run(command)
    assert history.state == before  # nothing recorded
    ((field, messages),) = caught.value.fields.items()
    return field, messages


@pytest.mark.parametrize("char", ACTIVE)
def test_an_email_with_a_control_or_bidi_character_is_refused_naming_the_field(char: str) -> None:
    history = registered()
    command = cmd.AddUser(
        account_id=ACCOUNT_ID,
        user_id="u2",
        name="Red",
        email=f'"{char}x"@example.com',
        role="Viewer",
    )
    field, messages = refused_field(history, command)
    assert field == "email" and f"U+{ord(char):04X}" in messages[0]


@pytest.mark.parametrize("email", ['"\x1b[31mred\x1b[0m"@example.com', '"\x07red\x07"@example.com'])
def test_the_demonstrated_escape_sequence_emails_are_refused(email: str) -> None:
    command = cmd.AddUser(
        account_id=ACCOUNT_ID, user_id="u2", name="Red", email=email, role="Viewer"
    )
    assert refused_field(registered(), command)[0] == "email"


@pytest.mark.parametrize("char", ACTIVE)
def test_a_user_name_with_a_control_or_bidi_character_is_refused(char: str) -> None:
    history = registered()
    add = cmd.AddUser(
        account_id=ACCOUNT_ID, user_id="u2", name=f"Bo{char}b", email="b@x.io", role="Viewer"
    )
    assert refused_field(history, add)[0] == "name"
    rename = cmd.UpdateUser(account_id=ACCOUNT_ID, user_id=OWNER_ID, name=f"Ada{char}")
    assert refused_field(history, rename)[0] == "name"


@pytest.mark.parametrize("char", ACTIVE)
def test_an_account_or_owner_with_a_control_or_bidi_character_is_refused(char: str) -> None:
    def register(**changes: str) -> cmd.RegisterAccount:
        fields = {"name": "Acme", "owner_name": "Ada", "owner_email": "ada@x.io", **changes}
        return cmd.RegisterAccount(account_id=ACCOUNT_ID, owner_user_id=OWNER_ID, **fields)

    assert refused_field(History(), register(name=f"Acme{char}"))[0] == "name"
    assert refused_field(History(), register(owner_name=f"Ada{char}"))[0] == "name"
    assert refused_field(History(), register(owner_email=f"ada{char}@x.io"))[0] == "email"


@pytest.mark.parametrize("char", ACTIVE)
def test_a_subnet_with_a_control_or_bidi_character_is_refused(char: str) -> None:
    history = registered()
    history.create_key(KEY)
    allow = cmd.AllowSourceSubnet(account_id=ACCOUNT_ID, name=KEY, cidr=f"10.0.0.0/8{char}")
    assert refused_field(history, allow) == ("cidr", [unprintable_reason(allow.cidr)])
    create = cmd.CreateSecretKey(
        account_id=ACCOUNT_ID,
        name="other-key-0001",
        user_id=OWNER_ID,
        key_id="00ab",
        key_hash="h",
        allowed_source_ips=(f"{char}10.0.0.0/8",),
    )
    assert refused_field(history, create)[0] == "allowedSourceIps"


def test_a_name_that_reads_as_a_sentence_is_accepted_and_kept_as_given() -> None:
    history = registered()
    name = "Bob' <x@y> added with role Owner. User 'Eve"
    history.add_user("u2", name=name)
    assert history.state.user("u2").name == name
