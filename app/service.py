"""The application service: load the account, decide, append, wait until in effect.

Every change, from HTTP or the CLI, goes through ``Ledger.execute``. New keys
are generated and hashed here; the plaintext is returned to the caller once and
is held nowhere else.

With ``KEYLEDGER_MIN_REPLICAS``, a change is acknowledged only once that many
replicas hold it (``EventStore.confirm``). When they do not confirm in time,
``commit`` raises ``ChangeUnconfirmed`` (the CLI reports it and exits 1), unless
the caller serves a request in a ``ChangeScope`` (the web app does): then the
change is noted there and its result returned, and the web layer answers 503.

A request with an ``Idempotency-Key`` *defers* its change (``ChangeScope.deferring``):
``execute`` decides it and returns its outcome as if it were in effect, without
appending; the web layer renders the response from it, then ``commit``s the
change together with that response, sealed, in the same append script
(``adapters.idempotency.Receipt``). So a change and the result a retry replays
are written, replicated and lost only together.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

from keyledger.adapters.accounts import AccountRepository
from keyledger.adapters.applied import AppliedWatch
from keyledger.adapters.eventstore import EventStore
from keyledger.adapters.idempotency import Receipt
from keyledger.adapters.keyspace import Keyspace
from keyledger.authn.hashing import KeyHasher
from keyledger.domain import commands as cmd
from keyledger.domain.account import AccountState, Limits, Recorder
from keyledger.domain.decisions import decide
from keyledger.domain.errors import ChangeUnconfirmed, StoreUnavailable
from keyledger.domain.events import Actor, Event
from keyledger.domain.revocations import is_revocation
from keyledger.domain.tokens import KeyKind, generate

Clock = Callable[[], datetime]

NOT_IN_EFFECT = (
    "recorded but not yet in effect: the projector has not applied this change yet "
    "(is the projector running?); it takes effect as soon as it is applied"
)
UNCONFIRMED = (
    "the change may or may not have been recorded: fewer than {replicas} replicas of "
    "Redis confirmed it within {wait_ms} ms, and it could be lost if Redis fails over "
    "now. Retry with the same Idempotency-Key: the retry returns the first result if "
    "the change was recorded, or applies it once if it was not"
)


@dataclass(frozen=True)
class Change:
    """A decided change, not yet appended: its events continue ``expected_version``."""

    account_id: str
    expected_version: int
    events: tuple[Event, ...]
    state: AccountState  # the account once the events are applied
    change_budget: int
    #: The change only revokes (``domain.revocations``): it counts against the budget of
    #: revocations, not of changes.
    revocation: bool = False


@dataclass
class ChangeScope:
    """The changes of one request: the change it deferred (``deferring``: decided, to be
    committed by the caller), and the changes no replica confirmed (answered 503)."""

    deferring: bool = False
    deferred: Change | None = None
    unconfirmed: list[ChangeUnconfirmed] = field(default_factory=list)


#: Set by the web app around each request (``keyledger.web.durability``).
CURRENT_SCOPE: ContextVar[ChangeScope | None] = ContextVar("keyledger_change_scope", default=None)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Outcome:
    events: tuple[Event, ...]
    state: AccountState
    #: False when the projector did not apply the change within the wait.
    in_effect: bool


class Ledger:
    def __init__(
        self,
        store: EventStore,
        accounts: AccountRepository,
        watch: AppliedWatch,
        hasher: KeyHasher,
        keyspace: Keyspace,
        limits: Limits,
        apply_timeout: float,
        clock: Clock = utcnow,
        changes_per_minute: int = 0,
        revocations_per_minute: int = 0,
    ):
        self.store, self.accounts, self.watch = store, accounts, watch
        self.hasher, self.keys, self.limits = hasher, keyspace, limits
        self.apply_timeout, self.clock = apply_timeout, clock
        self.changes_per_minute = changes_per_minute
        self.revocations_per_minute = revocations_per_minute

    def change_budget(self, actor: Actor, revocation: bool = False) -> int:
        """The per-minute budget a change by ``actor`` counts against (0: none).

        Only changes made with an API key count (actor kind ``user``); the operator's
        (``keyledger`` CLI) and any other system actor's neither count nor are ever
        refused, so support can always act on an account that spent its budget. A
        change that only revokes counts against the revocations' own budget, which no
        other change can spend (``domain.revocations``).
        """
        if actor.kind != "user":
            return 0
        return self.revocations_per_minute if revocation else self.changes_per_minute

    def state(self, account_id: str) -> AccountState:
        """For reads: the account as every change in effect left it (usually from memory)."""
        return self.accounts.load(account_id, fresh=False)

    def execute(self, command: cmd.Command, actor: Actor) -> Outcome:
        state = self.accounts.load(command.account_id)
        events = decide(state, command, Recorder(state, self.clock(), actor), self.limits)
        if not events:  # nothing changes (e.g. a role set to the role the user has)
            return Outcome((), state, True)
        revocation = is_revocation(events)
        change = Change(
            command.account_id,
            state.version,
            tuple(events),
            state.evolve(events),
            self.change_budget(actor, revocation),
            revocation,
        )
        scope = CURRENT_SCOPE.get()
        if scope is not None and scope.deferring:
            if scope.deferred is not None:
                raise RuntimeError("a request deferring its change may make only one")
            scope.deferred = change
            return Outcome(change.events, change.state, True)
        return self.commit(change)

    def commit(self, change: Change, receipt: Receipt | None = None) -> Outcome:
        """Append a decided change (with ``receipt``: and the request's sealed result),
        wait until it is in effect, and until enough replicas hold it."""
        appended = self.store.append(
            change.account_id,
            change.expected_version,
            change.events,
            change_budget=change.change_budget,
            revocation=change.revocation,
            receipt=receipt,
        )
        try:
            in_effect = self.watch.wait(
                appended.partition, appended.last_log_id, self.apply_timeout
            )
        except StoreUnavailable:
            # Recorded, but whether it is applied cannot be seen now: say so (202),
            # never an error, so the caller gets what it must see once (a new key).
            in_effect = False
        finally:
            # After the wait: replicas that confirm hold the projector's work too.
            confirmed = self.store.confirm(appended)
        if not confirmed:
            durability = self.store.durability
            unconfirmed = ChangeUnconfirmed(
                UNCONFIRMED.format(replicas=durability.min_replicas, wait_ms=durability.wait_ms),
                account_id=change.account_id,
                version=appended.version,
                digest=appended.digest,
            )
            scope = CURRENT_SCOPE.get()
            if scope is None:
                raise unconfirmed
            scope.unconfirmed.append(unconfirmed)
        return Outcome(change.events, change.state, in_effect)

    def _new_key(
        self, kind: KeyKind, account_id: str, key_id: str | None = None
    ) -> tuple[str, str, str]:
        key = generate(kind, self.keys.partition_of(account_id), key_id)
        return key.token, key.key_id, self.hasher.hash(key.token)

    # -- operator actions -------------------------------------------------------------
    def register_account(
        self, name: str, owner_name: str, owner_email: str, actor: Actor
    ) -> tuple[str, str, Outcome]:
        account_id, owner_id = new_id(), new_id()
        outcome = self.execute(
            cmd.RegisterAccount(
                account_id=account_id,
                name=name,
                owner_user_id=owner_id,
                owner_name=owner_name,
                owner_email=owner_email,
            ),
            actor,
        )
        return account_id, owner_id, outcome

    def enable_api(self, account_id: str, actor: Actor) -> tuple[str | None, Outcome]:
        """Enable the API; the first time, issue the account key (returned once)."""
        token, key_id, key_hash = self._new_key(KeyKind.ACCOUNT, account_id)
        outcome = self.execute(
            cmd.EnableApi(account_id=account_id, key_id=key_id, key_hash=key_hash), actor
        )
        issued = outcome.state.account_key_id == key_id
        return (token if issued else None), outcome

    def disable_api(self, account_id: str, actor: Actor) -> Outcome:
        return self.execute(cmd.DisableApi(account_id=account_id), actor)

    def rotate_account_key(
        self, account_id: str, actor: Actor, grace_seconds: int = 0
    ) -> tuple[str, Outcome]:
        """A new account key; the old one keeps working for ``grace_seconds``."""
        token, key_id, key_hash = self._new_key(KeyKind.ACCOUNT, account_id)
        outcome = self.execute(
            cmd.RotateAccountKey(
                account_id=account_id,
                key_id=key_id,
                key_hash=key_hash,
                grace_seconds=grace_seconds,
            ),
            actor,
        )
        return token, outcome

    # -- account owners' actions ------------------------------------------------------
    def add_user(
        self, account_id: str, name: str, email: str, role: str, actor: Actor
    ) -> tuple[str, Outcome]:
        user_id = new_id()
        outcome = self.execute(
            cmd.AddUser(account_id=account_id, user_id=user_id, name=name, email=email, role=role),
            actor,
        )
        return user_id, outcome

    def update_user(
        self, account_id: str, user_id: str, name: str | None, role: str | None, actor: Actor
    ) -> Outcome:
        return self.execute(
            cmd.UpdateUser(account_id=account_id, user_id=user_id, name=name, role=role), actor
        )

    def remove_user(self, account_id: str, user_id: str, actor: Actor) -> Outcome:
        return self.execute(cmd.RemoveUser(account_id=account_id, user_id=user_id), actor)

    def create_secret_key(
        self,
        account_id: str,
        name: str,
        user_id: str,
        allowed_source_ips: tuple[str, ...],
        actor: Actor,
        description: str = "",
        expires: datetime | None = None,
    ) -> tuple[str, Outcome]:
        token, key_id, key_hash = self._new_key(KeyKind.SECRET, account_id)
        outcome = self.execute(
            cmd.CreateSecretKey(
                account_id=account_id,
                name=name,
                user_id=user_id,
                key_id=key_id,
                key_hash=key_hash,
                allowed_source_ips=allowed_source_ips,
                description=description,
                expires=expires,
            ),
            actor,
        )
        return token, outcome

    # -- the key lifecycle (docs/lifecycle.md) ------------------------------------------
    def rotate_secret_key(
        self, account_id: str, name: str, grace_seconds: int, actor: Actor
    ) -> tuple[str, Outcome]:
        """A new secret for the key (same key id, settings kept); returned once."""
        key = self.accounts.load(account_id).key(name)
        token, key_id, key_hash = self._new_key(KeyKind.SECRET, account_id, key.key_id)
        outcome = self.execute(
            cmd.RotateSecretKey(
                account_id=account_id,
                name=name,
                key_id=key_id,
                key_hash=key_hash,
                grace_seconds=grace_seconds,
            ),
            actor,
        )
        return token, outcome

    def update_secret_key(self, command: cmd.UpdateSecretKey, actor: Actor) -> Outcome:
        return self.execute(command, actor)

    def record_expiries(self, account_id: str, actor: Actor) -> Outcome:
        return self.execute(cmd.RecordExpiries(account_id=account_id), actor)

    def revoke_leaked_secret(
        self, account_id: str, key_id: str, key_hash: str, url: str, actor: Actor
    ) -> Outcome:
        return self.execute(
            cmd.RevokeLeakedSecret(
                account_id=account_id, key_id=key_id, key_hash=key_hash, url=url
            ),
            actor,
        )

    def report_leaked_account_key(
        self, account_id: str, key_id: str, url: str, actor: Actor
    ) -> Outcome:
        return self.execute(
            cmd.ReportLeakedAccountKey(account_id=account_id, key_id=key_id, url=url), actor
        )

    def delete_secret_key(self, account_id: str, name: str, actor: Actor) -> Outcome:
        return self.execute(cmd.DeleteSecretKey(account_id=account_id, name=name), actor)

    def allow_subnet(self, account_id: str, name: str, cidr: str, actor: Actor) -> Outcome:
        return self.execute(
            cmd.AllowSourceSubnet(account_id=account_id, name=name, cidr=cidr), actor
        )

    def remove_subnet(self, account_id: str, name: str, cidr: str, actor: Actor) -> Outcome:
        return self.execute(
            cmd.RemoveSourceSubnet(account_id=account_id, name=name, cidr=cidr), actor
        )
