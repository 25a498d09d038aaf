"""Pure decisions: given the account state and a command, which events happen.

Each function validates the command against the state and records events on
the ``Recorder``; it raises a ``KeyledgerError`` (and records nothing) when the
command is not allowed. No I/O happens here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keyledger.domain import commands as cmd
from keyledger.domain import events as ev
from keyledger.domain import lifecycle
from keyledger.domain.account import (
    AccountState,
    Limits,
    Recorder,
    check_account_name,
    check_email,
    check_key_name,
    check_role,
    check_subnet,
    check_user_name,
)
from keyledger.domain.errors import Conflict, InvalidInput, LimitExceeded, NotFound
from keyledger.domain.network import whole_family_covered
from keyledger.domain.roles import KEY_HOLDER_ROLES, Role


def register_account(state: AccountState, c: cmd.RegisterAccount, rec: Recorder, _: Limits) -> None:
    if state.exists:
        raise Conflict(f"account {c.account_id!r} already exists")
    name = check_account_name(c.name)
    owner_name, email = check_user_name(c.owner_name), check_email(c.owner_email)
    rec.record(ev.AccountRegistered, name=name, owner_user_id=c.owner_user_id)
    rec.record(
        ev.UserAdded, user_id=c.owner_user_id, name=owner_name, email=email, role=Role.OWNER.value
    )


def enable_api(state: AccountState, c: cmd.EnableApi, rec: Recorder, _: Limits) -> None:
    if state.api_enabled:
        raise Conflict("the API is already enabled for this account")
    rec.record(ev.ApiEnabled)
    if state.account_key_id is None:
        rec.record(ev.AccountKeyIssued, key_id=c.key_id, key_hash=c.key_hash)


def disable_api(state: AccountState, _c: cmd.DisableApi, rec: Recorder, _: Limits) -> None:
    if not state.api_enabled:
        raise Conflict("the API is already disabled for this account")
    rec.record(ev.ApiDisabled)


def add_user(state: AccountState, c: cmd.AddUser, rec: Recorder, limits: Limits) -> None:
    name, email, role = check_user_name(c.name), check_email(c.email), check_role(c.role)
    if c.user_id in state.users:
        raise Conflict(f"user id {c.user_id!r} is already in use")
    if len(state.users) >= limits.users_per_account:
        raise LimitExceeded(f"an account holds at most {limits.users_per_account} users")
    if any(u.email.lower() == email.lower() for u in state.users.values()):
        raise Conflict(f"a user with email {email!r} already exists in this account")
    rec.record(ev.UserAdded, user_id=c.user_id, name=name, email=email, role=role.value)


def update_user(state: AccountState, c: cmd.UpdateUser, rec: Recorder, _: Limits) -> None:
    user = state.user(c.user_id)
    if c.name is None and c.role is None:
        raise InvalidInput("nothing to change", fields={"_schema": ["give name and/or role"]})
    name = user.name if c.name is None else check_user_name(c.name)
    role = user.role if c.role is None else check_role(c.role)
    if role is not user.role and user.role is Role.OWNER and len(state.owners()) == 1:
        raise Conflict("the last Owner of an account cannot change role")
    if name != user.name:
        rec.record(ev.UserRenamed, user_id=user.id, name=name, previous_name=user.name)
    if role is not user.role:
        rec.record(
            ev.UserRoleChanged,
            user_id=user.id,
            user_name=name,
            role=role.value,
            previous_role=user.role.value,
        )


def remove_user(state: AccountState, c: cmd.RemoveUser, rec: Recorder, _: Limits) -> None:
    user = state.user(c.user_id)
    if user.role is Role.OWNER and len(state.owners()) == 1:
        raise Conflict("the last Owner of an account cannot be removed")
    for key in sorted(state.keys_of(user.id), key=lambda k: k.name):
        rec.record(
            ev.SecretKeyDeleted,
            name=key.name,
            key_id=key.key_id,
            user_id=user.id,
            user_name=user.name,
        )
    rec.record(ev.UserRemoved, user_id=user.id, user_name=user.name)


def create_secret_key(
    state: AccountState, c: cmd.CreateSecretKey, rec: Recorder, limits: Limits
) -> None:
    name = check_key_name(c.name)
    subnets = _checked_subnets(c.allowed_source_ips, limits)
    description = lifecycle.check_description(c.description)
    expires = None if c.expires is None else lifecycle.check_expiry(c.expires, rec.now, limits)
    try:
        user = state.user(c.user_id)
    except NotFound:
        raise InvalidInput(
            "no such user", fields={"userId": ["no such user in this account"]}
        ) from None
    if user.role not in KEY_HOLDER_ROLES:
        allowed = ", ".join(sorted(r.value for r in KEY_HOLDER_ROLES))
        raise InvalidInput(
            f"users with role {user.role.value} cannot hold API keys",
            fields={"userId": [f"the user's role must be one of: {allowed}"]},
        )
    if name in state.keys:
        raise Conflict(f"an API key named {name!r} already exists in this account")
    if len(state.keys) >= limits.keys_per_account:
        raise LimitExceeded(f"an account holds at most {limits.keys_per_account} API keys")
    rec.record(
        ev.SecretKeyCreated,
        name=name,
        key_id=c.key_id,
        user_id=user.id,
        user_name=user.name,
        key_hash=c.key_hash,
        allowed_source_ips=subnets,
        description=description,
        expires=expires,
    )


def _checked_subnets(values: tuple[str, ...], limits: Limits) -> tuple[str, ...]:
    if len(values) > limits.subnets_per_key:
        raise InvalidInput(
            "too many subnets",
            fields={"allowedSourceIps": [f"at most {limits.subnets_per_key} subnets per key"]},
        )
    canonical: list[str] = []
    for value in values:
        subnet = check_subnet(value, limits, "allowedSourceIps")
        if subnet not in canonical:
            canonical.append(subnet)
    _refuse_whole_family(canonical, limits, "allowedSourceIps")
    return tuple(canonical)


def _refuse_whole_family(subnets: list[str], limits: Limits, field_name: str) -> None:
    """Subnets that together allow a whole address family are ``0.0.0.0/0`` or ``::/0``
    in pieces: refused like them unless ``KEYLEDGER_ALLOW_ANY_SOURCE``."""
    if limits.allow_match_all_subnets:
        return
    everything = whole_family_covered(subnets)
    if everything is not None:
        reason = (
            f"together with the key's other subnets this allows every address "
            f"({everything}); it is refused"
        )
        raise InvalidInput(f"invalid subnet: {reason}", fields={field_name: [reason]})


def delete_secret_key(
    state: AccountState, c: cmd.DeleteSecretKey, rec: Recorder, _: Limits
) -> None:
    key = state.key(c.name)
    user = state.user(key.user_id)
    rec.record(
        ev.SecretKeyDeleted, name=key.name, key_id=key.key_id, user_id=user.id, user_name=user.name
    )


def allow_source_subnet(
    state: AccountState, c: cmd.AllowSourceSubnet, rec: Recorder, limits: Limits
) -> None:
    key = state.key(c.name)
    cidr = check_subnet(c.cidr, limits)
    if cidr in key.allowed_source_ips:
        raise Conflict(f"{cidr} is already allowed for API key {key.name!r}")
    if len(key.allowed_source_ips) >= limits.subnets_per_key:
        raise LimitExceeded(f"an API key holds at most {limits.subnets_per_key} subnets")
    _refuse_whole_family([*key.allowed_source_ips, cidr], limits, "cidr")
    rec.record(ev.SourceSubnetAllowed, name=key.name, key_id=key.key_id, cidr=cidr)


def remove_source_subnet(
    state: AccountState, c: cmd.RemoveSourceSubnet, rec: Recorder, limits: Limits
) -> None:
    key = state.key(c.name)
    cidr = check_subnet(c.cidr, limits)
    if cidr not in key.allowed_source_ips:
        raise NotFound(f"{cidr} is not in the allowed subnets of API key {key.name!r}")
    rec.record(ev.SourceSubnetRemoved, name=key.name, key_id=key.key_id, cidr=cidr)


Decision = Callable[[AccountState, Any, Recorder, Limits], None]

DECISIONS: dict[type[cmd.Command], Decision] = {
    cmd.RegisterAccount: register_account,
    cmd.EnableApi: enable_api,
    cmd.DisableApi: disable_api,
    cmd.RotateAccountKey: lifecycle.rotate_account_key,
    cmd.AddUser: add_user,
    cmd.UpdateUser: update_user,
    cmd.RemoveUser: remove_user,
    cmd.CreateSecretKey: create_secret_key,
    cmd.DeleteSecretKey: delete_secret_key,
    cmd.AllowSourceSubnet: allow_source_subnet,
    cmd.RemoveSourceSubnet: remove_source_subnet,
    cmd.RotateSecretKey: lifecycle.rotate_secret_key,
    cmd.UpdateSecretKey: lifecycle.update_secret_key,
    cmd.RecordExpiries: lifecycle.record_expiries,
    cmd.RevokeLeakedSecret: lifecycle.revoke_leaked_secret,
    cmd.ReportLeakedAccountKey: lifecycle.report_leaked_account_key,
}


def decide(
    state: AccountState, command: cmd.Command, rec: Recorder, limits: Limits
) -> list[ev.Event]:
    if not state.exists and not isinstance(command, cmd.RegisterAccount):
        raise NotFound(f"account {command.account_id!r} not found")
    DECISIONS[type(command)](state, command, rec, limits)
    return rec.events
