"""Commands: what a caller asks the account to do, in the imperative.

Key material arrives here already hashed; a command never carries a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
    #: How long the current account key keeps working beside the new one (0: it stops now).
    grace_seconds: int = 0


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
    description: str = ""
    expires: datetime | None = None


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


# -- the key lifecycle ---------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RotateSecretKey(Command):
    name: str
    #: The key id the new secret was made for: the key's own (a rotation keeps it).
    key_id: str
    key_hash: str
    grace_seconds: int = 0


@dataclass(frozen=True, kw_only=True)
class UpdateSecretKey(Command):
    """Change what is given: ``enabled``, ``description``, and the expiry when
    ``change_expiry`` (``expires`` None then removes it)."""

    name: str
    enabled: bool | None = None
    description: str | None = None
    change_expiry: bool = False
    expires: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class RecordExpiries(Command):
    """Record every expiry and grace end that the clock has already passed."""


@dataclass(frozen=True, kw_only=True)
class RevokeLeakedSecret(Command):
    """A secret scanner reported the secret whose stored hash is ``key_hash``."""

    key_id: str
    key_hash: str
    url: str


@dataclass(frozen=True, kw_only=True)
class ReportLeakedAccountKey(Command):
    key_id: str
    url: str
