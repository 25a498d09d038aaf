"""Builders shared by the unit tests: a fixed clock, actors and an account history.

``History`` runs commands through ``decide`` exactly as the application service
does (fresh ``Recorder`` per command, ``evolve`` on success) but keeps everything
in memory, so decision tests read as a sequence of commands.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from keyledger.domain import commands as cmd
from keyledger.domain import events as ev
from keyledger.domain.account import AccountState, Limits, Recorder
from keyledger.domain.decisions import decide
from keyledger.domain.events import Actor, Event
from keyledger.policies.facts import (
    AccountKeyRecord,
    AccountRecord,
    AuthFacts,
    SecretKeyRecord,
    UserRecord,
)

NOW = datetime(2019, 3, 15, 14, 26, 2, tzinfo=UTC)
#: A day after ``NOW``: an expiry or the end of a grace period.
LATER = datetime(2019, 3, 16, 14, 26, 2, tzinfo=UTC)
ACCOUNT_ID = "acc-0001"
OWNER_ID = "u-owner"
OWNER_NAME = "Ada Owner"
OWNER_EMAIL = "ada@example.com"

ACTOR = Actor(
    kind="user",
    name=OWNER_NAME,
    user_id=OWNER_ID,
    api_key_name="owner-automation",
    source_ip="10.0.0.1",
    request_id="req-1",
)


def fake_hash(label: str) -> str:
    """A stand-in for an argon2id PHC string: decisions never look inside it."""
    return f"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${label}"


class History:
    """An account's life in memory: run commands, keep the state and every event."""

    def __init__(self, limits: Limits | None = None, account_id: str = ACCOUNT_ID):
        self.limits = limits or Limits()
        self.state = AccountState(id=account_id)
        self.events: list[Event] = []

    @property
    def account_id(self) -> str:
        return self.state.id

    def run(self, command: cmd.Command, actor: Actor = ACTOR) -> list[Event]:
        recorder = Recorder(self.state, NOW, actor)
        new_events = decide(self.state, command, recorder, self.limits)
        self.state = self.state.evolve(new_events)
        self.events.extend(new_events)
        return new_events

    # -- command shorthands -----------------------------------------------------------
    def register(self, name: str = "Acme Corp") -> list[Event]:
        return self.run(
            cmd.RegisterAccount(
                account_id=self.account_id,
                name=name,
                owner_user_id=OWNER_ID,
                owner_name=OWNER_NAME,
                owner_email=OWNER_EMAIL,
            )
        )

    def enable_api(self, key_id: str = "00aa000000000001") -> list[Event]:
        return self.run(
            cmd.EnableApi(account_id=self.account_id, key_id=key_id, key_hash=fake_hash(key_id))
        )

    def disable_api(self) -> list[Event]:
        return self.run(cmd.DisableApi(account_id=self.account_id))

    def add_user(
        self,
        user_id: str,
        role: str = "Viewer",
        name: str | None = None,
        email: str | None = None,
    ) -> list[Event]:
        return self.run(
            cmd.AddUser(
                account_id=self.account_id,
                user_id=user_id,
                name=name if name is not None else f"User {user_id}",
                email=email if email is not None else f"{user_id}@example.com",
                role=role,
            )
        )

    def create_key(
        self,
        name: str,
        user_id: str = OWNER_ID,
        subnets: tuple[str, ...] = (),
        key_id: str | None = None,
    ) -> list[Event]:
        key_id = key_id or "00" + hashlib.sha256(name.encode()).hexdigest()[:14]
        return self.run(
            cmd.CreateSecretKey(
                account_id=self.account_id,
                name=name,
                user_id=user_id,
                key_id=key_id,
                key_hash=fake_hash(key_id),
                allowed_source_ips=subnets,
            )
        )


def registered(limits: Limits | None = None) -> History:
    history = History(limits)
    history.register()
    return history


# -- policy facts -----------------------------------------------------------------------

ACCOUNT = AccountRecord(id=ACCOUNT_ID, name="Acme Corp", api_enabled=True)
ACCOUNT_KEY = AccountKeyRecord(key_id="00aa000000000001", account_id=ACCOUNT_ID)
SECRET_KEY = SecretKeyRecord(
    key_id="00bb000000000001",
    account_id=ACCOUNT_ID,
    name="ci-deploy-key",
    user_id=OWNER_ID,
    allowed_source_ips=(),
)
USER = UserRecord(id=OWNER_ID, account_id=ACCOUNT_ID, name=OWNER_NAME, role="Owner")

#: Facts every policy allows: the starting point each denial test changes one thing in.
VALID_FACTS = AuthFacts(
    method="GET",
    path="/v1/",
    source_ip="10.2.5.7",
    credentials_problem=None,
    account_key=ACCOUNT_KEY,
    account_key_verified=True,
    account=ACCOUNT,
    secret_key=SECRET_KEY,
    secret_key_verified=True,
    user=USER,
)


def facts(**changes: object) -> AuthFacts:
    return replace(VALID_FACTS, **changes)  # type: ignore[arg-type]


def with_subnets(*subnets: str, source_ip: str | None = "10.2.5.7") -> AuthFacts:
    return facts(secret_key=replace(SECRET_KEY, allowed_source_ips=subnets), source_ip=source_ip)


def with_role(role: str, method: str = "GET", path: str = "/v1/") -> AuthFacts:
    return facts(user=replace(USER, role=role), method=method, path=path)


# -- one realistic event of each type ---------------------------------------------------

BASE: dict[str, Any] = {"account_id": ACCOUNT_ID, "version": 7, "time": NOW, "actor": ACTOR}

#: One realistic instance per event type, keyed by the stored type name.
SAMPLES: dict[str, ev.Event] = {
    "AccountRegistered": ev.AccountRegistered(**BASE, name="Acme Corp", owner_user_id="u-owner"),
    "ApiEnabled": ev.ApiEnabled(**BASE),
    "ApiDisabled": ev.ApiDisabled(**BASE),
    "AccountKeyIssued": ev.AccountKeyIssued(**BASE, key_id="00aa", key_hash="$argon2id$x"),
    "AccountKeyRevoked": ev.AccountKeyRevoked(**BASE, key_id="00aa"),
    "UserAdded": ev.UserAdded(
        **BASE, user_id="u2", name="Zoë Ünicode", email="zoe@example.com", role="Viewer"
    ),
    "UserRenamed": ev.UserRenamed(**BASE, user_id="u2", name="Zoe", previous_name="Zoë"),
    "UserRoleChanged": ev.UserRoleChanged(
        **BASE, user_id="u2", user_name="Zoe", role="Owner", previous_role="Viewer"
    ),
    "UserRemoved": ev.UserRemoved(**BASE, user_id="u2", user_name="Zoe"),
    "SecretKeyCreated": ev.SecretKeyCreated(
        **BASE,
        name="ci-deploy-key",
        key_id="00bb",
        user_id="u-owner",
        user_name="Ada",
        key_hash="$argon2id$y",
        allowed_source_ips=("10.2.5.0/24", "2001:db8::/32"),
    ),
    "SecretKeyDeleted": ev.SecretKeyDeleted(
        **BASE, name="ci-deploy-key", key_id="00bb", user_id="u-owner", user_name="Ada"
    ),
    "SourceSubnetAllowed": ev.SourceSubnetAllowed(
        **BASE, name="ci-deploy-key", key_id="00bb", cidr="10.2.5.0/24"
    ),
    "SourceSubnetRemoved": ev.SourceSubnetRemoved(
        **BASE, name="ci-deploy-key", key_id="00bb", cidr="10.2.5.0/24"
    ),
    "SecretKeyRotated": ev.SecretKeyRotated(
        **BASE,
        name="ci-deploy-key",
        key_id="00bb",
        key_hash="$argon2id$new",
        previous_key_hash="$argon2id$y",
        previous_expires=LATER,
    ),
    "PreviousSecretExpired": ev.PreviousSecretExpired(
        **BASE, name="ci-deploy-key", key_id="00bb", expired_at=LATER
    ),
    "PreviousSecretRevoked": ev.PreviousSecretRevoked(
        **BASE,
        name="ci-deploy-key",
        key_id="00bb",
        key_hash="$argon2id$y",
        reason="leaked",
        url="https://github.com/acme/app/blob/main/.env",
    ),
    "SecretKeyDisabled": ev.SecretKeyDisabled(**BASE, name="ci-deploy-key", key_id="00bb"),
    "SecretKeyEnabled": ev.SecretKeyEnabled(**BASE, name="ci-deploy-key", key_id="00bb"),
    "SecretKeyDescriptionChanged": ev.SecretKeyDescriptionChanged(
        **BASE,
        name="ci-deploy-key",
        key_id="00bb",
        description='Deploys "web" from CI',
        previous_description="",
    ),
    "SecretKeyExpiryChanged": ev.SecretKeyExpiryChanged(
        **BASE, name="ci-deploy-key", key_id="00bb", expires=LATER, previous_expires=None
    ),
    "SecretKeyExpired": ev.SecretKeyExpired(
        **BASE, name="ci-deploy-key", key_id="00bb", expired_at=LATER
    ),
    "SecretKeyRevoked": ev.SecretKeyRevoked(
        **BASE,
        name="ci-deploy-key",
        key_id="00bb",
        user_id="u-owner",
        user_name="Ada",
        key_hash="$argon2id$y",
        reason="leaked",
        url="https://github.com/acme/app/blob/main/.env",
    ),
    "AccountKeyRetired": ev.AccountKeyRetired(**BASE, key_id="00aa", expires=LATER),
    "PreviousAccountKeyExpired": ev.PreviousAccountKeyExpired(
        **BASE, key_id="00aa", expired_at=LATER
    ),
    "AccountKeyReportedLeaked": ev.AccountKeyReportedLeaked(
        **BASE, key_id="00aa", url="https://github.com/acme/app/blob/main/.env"
    ),
}
