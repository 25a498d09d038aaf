"""Commands: what a caller asks the account to do, in the imperative.

Key material arrives here already hashed; a command never carries a secret.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Command:
    account_id: str


@dataclass(frozen=True, kw_only=True)
class RegisterAccount(Command):
    name: str
    owner_user_id: str
    owner_name: str
    owner_email: str


@dataclass(frozen=True, kw_only=True)
class EnableApi(Command):
    key_id: str
    key_hash: str


@dataclass(frozen=True, kw_only=True)
class DisableApi(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class RotateAccountKey(Command):
    key_id: str
    key_hash: str


@dataclass(frozen=True, kw_only=True)
class AddUser(Command):
    user_id: str
    name: str
    email: str
    role: str


@dataclass(frozen=True, kw_only=True)
class UpdateUser(Command):
    user_id: str
    name: str | None = None
    role: str | None = None


@dataclass(frozen=True, kw_only=True)
class RemoveUser(Command):
    user_id: str


@dataclass(frozen=True, kw_only=True)
class CreateSecretKey(Command):
    name: str
    user_id: str
    key_id: str
    key_hash: str
    allowed_source_ips: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DeleteSecretKey(Command):
    name: str


@dataclass(frozen=True, kw_only=True)
class AllowSourceSubnet(Command):
    name: str
    cidr: str


@dataclass(frozen=True, kw_only=True)
class RemoveSourceSubnet(Command):
    name: str
    cidr: str
