"""What the policies decide on: facts about the request and the projected records.

The caller (``app.authn.authenticator``) gathers these: it parses the headers,
reads the records from the authentication projection and verifies the secrets
(argon2, remembered per process). The policies only look at the result.

Moments are seconds since the epoch (``time.time()``): ``AuthFacts.now`` is the
clock at the request, so a key stops working at its instant of expiry, whatever
a background job has or has not recorded yet.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AccountRecord:
    id: str
    name: str
    api_enabled: bool


@dataclass(frozen=True)
class AccountKeyRecord:
    key_id: str
    account_id: str
    #: When an account key rotated away with a grace period stops working (None: current).
    expires_at: float | None = None


@dataclass(frozen=True)
class SecretKeyRecord:
    key_id: str
    account_id: str
    name: str
    user_id: str
    allowed_source_ips: tuple[str, ...]
    enabled: bool = True
    expires_at: float | None = None
    #: End of the grace period of the secret that was current before a rotation.
    previous_expires_at: float | None = None


@dataclass(frozen=True)
class UserRecord:
    id: str
    account_id: str
    name: str
    role: str


@dataclass(frozen=True)
class AuthFacts:
    method: str
    path: str
    source_ip: str | None
    #: Why the credentials are unusable before any lookup (missing, malformed), or None.
    credentials_problem: str | None = None
    account_key: AccountKeyRecord | None = None
    account_key_verified: bool = False
    account: AccountRecord | None = None
    secret_key: SecretKeyRecord | None = None
    secret_key_verified: bool = False
    #: The secret presented is the key's previous one (rotated away with a grace period).
    previous_secret_verified: bool = False
    user: UserRecord | None = None
    now: float = 0.0
