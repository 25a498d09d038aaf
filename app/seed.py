"""``keyledger dev seed``: a realistic history at scale, for benchmarks and capacity planning.

Every change is decided by the domain (``decisions.decide`` on the account's state,
exactly as ``Ledger.execute`` does), so every event is one the service could have
recorded; the events of an account are then appended through ``EventStore.append``,
up to ``APPEND_CHUNK`` per call, so the log, the account streams, the heads and the
hash chains are the real ones (``keyledger audit verify`` passes). Only the per-change
round trips of the service (one append, one wait for the projector per change) are
skipped: that is what makes a million events take minutes rather than hours.

What each account gets (``docs/seed.md``): an owner and one user of every other role,
the API enabled with an account key, ``keys_per_account`` secret keys held by the
roles that may hold keys (a third with no subnet, a third allowing loopback only, a
third loopback plus a private /24), one more key created and deleted, and then its
share of the remaining events: subnets allowed and removed, users renamed,
key descriptions changed, contractors added, re-roled and removed, the API
switched off and on again. Events are spread evenly over the ``span`` before now.

Secrets: the keys are generated and hashed (argon2id, the service's own hasher) here;
the plaintext goes to ``secrets_out`` when given and is dropped otherwise. It is
never in an event, in Redis or in the summary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from keyledger.bootstrap import Container, check_partitions
from keyledger.domain import commands as cmd
from keyledger.domain.account import AccountState, Recorder
from keyledger.domain.decisions import decide
from keyledger.domain.events import OPERATOR, Actor, Event
from keyledger.domain.roles import Role
from keyledger.domain.tokens import KeyKind, generate
from keyledger.service import new_id

APPEND_CHUNK = 500  # events per append script call
HASH_THREADS = 4  # argon2-cffi releases the GIL: hashes run on every core
#: Roles of the users made for each account, beside its owner.
OTHER_ROLES = tuple(r for r in Role if r is not Role.OWNER)
KEY_HOLDERS = (Role.OWNER, Role.VIEWER, Role.LOGS_VIEWER)
#: Events every account gets before its share of the churn.
BASE_EVENTS = 2 + 2 + len(OTHER_ROLES) + 2  # registered, API + key, users, a key made and gone


class NamespaceNotEmpty(RuntimeError):
    """The namespace holds data: seeding refuses it unless forced."""


@dataclass(frozen=True)
class Plan:
    accounts: int
    keys_per_account: int
    events: int
    span: timedelta = timedelta(days=30)

    @property
    def minimum_events(self) -> int:
        return self.accounts * (BASE_EVENTS + self.keys_per_account)


@dataclass
class Summary:
    namespace: str
    accounts: int = 0
    users: int = 0
    keys: int = 0
    keys_deleted: int = 0
    events: int = 0
    partitions: int = 0
    secrets_written: int = 0
    projected: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "accounts": self.accounts,
            "users": self.users,
            "secretKeys": self.keys,
            "secretKeysDeleted": self.keys_deleted,
            "events": self.events,
            "partitions": self.partitions,
            "secretsWritten": self.secrets_written,
            "projected": self.projected,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


class Clock:
    """Moves evenly from ``start`` to ``end`` over ``steps`` changes."""

    def __init__(self, start: datetime, end: datetime, steps: int):
        self.now, self.step = start, (end - start) / max(steps, 1)

    def tick(self) -> datetime:
        self.now += self.step
        return self.now


class AccountHistory:
    """One account's history, decided change by change on its state."""

    def __init__(self, container: Container, account_id: str, clock: Clock):
        self.container, self.clock = container, clock
        self.state = AccountState(id=account_id)
        self.events: list[Event] = []

    def do(self, command: cmd.Command, actor: Actor = OPERATOR) -> None:
        recorder = Recorder(self.state, self.clock.tick(), actor)
        decided = decide(self.state, command, recorder, self.container.ledger.limits)
        self.state = self.state.evolve(decided)
        self.events += decided


def hashed(
    container: Container, kinds: list[KeyKind], partition: int, pool: ThreadPoolExecutor
) -> list[tuple[str, str, str]]:
    """New keys of ``kinds`` in ``partition``: (token, key id, argon2id hash)."""
    keys = [generate(kind, partition) for kind in kinds]
    hashes = list(pool.map(container.hasher.hash, [k.token for k in keys]))
    return [(k.token, k.key_id, h) for k, h in zip(keys, hashes, strict=True)]


def namespace_holds_data(container: Container) -> bool:
    """Any key of the namespace but its meta (every process records the partition count
    there at start), on any primary: a SCAN that stops at the first."""
    keys = container.keyspace
    found = container.redis.scan_iter(match=keys.every_key(), count=1000)
    return any(str(key) != keys.meta() for key in found)


class Seeder:
    def __init__(
        self,
        container: Container,
        secrets_out: IO[str] | None = None,
        on_progress: Callable[[str, int, int], None] | None = None,
    ):
        self.container = container
        self.secrets_out = secrets_out
        self.on_progress = on_progress or (lambda _phase, _done, _total: None)

    def run(self, plan: Plan, force: bool = False, project: bool = True) -> Summary:
        if plan.accounts < 1 or plan.keys_per_account < 0 or plan.events < 0:
            raise ValueError("accounts must be at least 1; keys and events at least 0")
        if not force and namespace_holds_data(self.container):
            raise NamespaceNotEmpty(
                f"the namespace {self.container.keyspace.namespace!r} already holds data; "
                "choose another (--namespace) or add to it with --force"
            )
        check_partitions(self.container.redis, self.container.keyspace)  # as every process
        summary = Summary(self.container.keyspace.namespace)
        total = max(plan.events, plan.minimum_events)
        end = datetime.now(UTC) - timedelta(seconds=1)
        clock = Clock(end - plan.span, end, total)
        shares = _shares(total - plan.minimum_events, plan.accounts)
        started = time.monotonic()
        partitions: set[int] = set()
        with ThreadPoolExecutor(HASH_THREADS) as pool:  # one for every account's keys
            for n, extra in enumerate(shares):
                history = self._account(n, plan, extra, clock, summary, pool)
                partitions.add(self.container.keyspace.partition_of(history.state.id))
                self._append(history)
                summary.events += len(history.events)
                self.on_progress("writing", summary.events, total)
        summary.partitions = len(partitions)
        summary.seconds["write"] = time.monotonic() - started
        if project:
            started = time.monotonic()
            summary.projected = self._project(sorted(partitions), summary.events)
            summary.seconds["project"] = time.monotonic() - started
        return summary

    def _account(
        self,
        n: int,
        plan: Plan,
        extra: int,
        clock: Clock,
        summary: Summary,
        pool: ThreadPoolExecutor,
    ) -> AccountHistory:
        account_id, owner_id = new_id(), new_id()
        partition = self.container.keyspace.partition_of(account_id)
        history = AccountHistory(self.container, account_id, clock)
        kinds = [KeyKind.ACCOUNT] + [KeyKind.SECRET] * (plan.keys_per_account + 1)
        account_key, *secret_keys = hashed(self.container, kinds, partition, pool)
        owner = f"Owner {n}"
        history.do(
            cmd.RegisterAccount(
                account_id=account_id,
                name=f"Seeded account {n}",
                owner_user_id=owner_id,
                owner_name=owner,
                owner_email=f"owner{n}@seed.example",
            )
        )
        history.do(
            cmd.EnableApi(account_id=account_id, key_id=account_key[1], key_hash=account_key[2])
        )
        users = {Role.OWNER: owner_id}
        for role in OTHER_ROLES:
            users[role] = new_id()
            history.do(
                cmd.AddUser(
                    account_id=account_id,
                    user_id=users[role],
                    name=f"{role.value} {n}",
                    email=f"{role.value.lower().replace(' ', '.')}{n}@seed.example",
                    role=role.value,
                )
            )
        names = []
        for k, (token, key_id, key_hash) in enumerate(secret_keys):
            name = f"seed-{n:07d}-{k:04d}"
            history.do(
                cmd.CreateSecretKey(
                    account_id=account_id,
                    name=name,
                    user_id=users[KEY_HOLDERS[k % len(KEY_HOLDERS)]],
                    key_id=key_id,
                    key_hash=key_hash,
                    allowed_source_ips=_subnets(n, k),
                    description=f"seeded key {k}",
                )
            )
            if k == plan.keys_per_account:  # the extra one: made to be deleted
                history.do(cmd.DeleteSecretKey(account_id=account_id, name=name))
                summary.keys_deleted += 1
                continue
            names.append(name)
            if self.secrets_out is not None:
                line = {
                    "accountId": account_id,
                    "accountKey": account_key[0],
                    "name": name,
                    "secretKey": token,
                }
                self.secrets_out.write(json.dumps(line) + "\n")
                summary.secrets_written += 1
        del account_key, secret_keys  # the plaintext goes no further
        actor = Actor(
            kind="user",
            name=owner,
            user_id=owner_id,
            api_key_name=names[0] if names else None,
            source_ip="127.0.0.1",
        )
        churn = _churn(account_id, names, users, n)
        while len(history.events) < BASE_EVENTS + plan.keys_per_account + extra:
            history.do(next(churn), actor)
        summary.accounts += 1
        summary.users += len(history.state.users)
        summary.keys += len(history.state.keys)
        return history

    def _append(self, history: AccountHistory) -> None:
        store, events = self.container.store, history.events
        for start in range(0, len(events), APPEND_CHUNK):
            store.append(history.state.id, start, events[start : start + APPEND_CHUNK])

    def _project(self, partitions: list[int], total: int) -> int:
        """Apply the new events with the real projector (another one may run beside it)."""
        from keyledger.workers.projector import Projector

        projector = Projector(self.container.redis, self.container.keyspace, consumer="seed")
        projector.setup()
        done = 0
        for partition in partitions:
            done += projector.catch_up(partition)
            self.on_progress("projecting", done, total)
        if projector.halted:
            raise RuntimeError(f"the projector halted on partitions {sorted(projector.halted)}")
        return done


def _subnets(n: int, k: int) -> tuple[str, ...]:
    """A third of the keys with no subnet, a third loopback only, a third loopback and a /24:
    every seeded key can be used from this machine."""
    match k % 3:
        case 0:
            return ()
        case 1:
            return ("127.0.0.0/8",)
    return ("127.0.0.0/8", f"10.{n % 250}.{k % 250}.0/24")


def _shares(extra: int, accounts: int) -> list[int]:
    base, rest = divmod(extra, accounts)
    return [base + (n < rest) for n in range(accounts)]


def _churn(
    account_id: str, names: list[str], users: dict[Role, str], n: int
) -> Iterator[cmd.Command]:
    """The changes an account sees over its life, in a fixed rotation, forever."""
    a = account_id
    step = 0
    while True:
        step += 1
        if names:
            name = names[step % len(names)]
            cidr = f"172.{16 + step % 16}.{(step // 16) % 256}.0/24"
            yield cmd.AllowSourceSubnet(account_id=a, name=name, cidr=cidr)
            yield cmd.RemoveSourceSubnet(account_id=a, name=name, cidr=cidr)
            yield cmd.UpdateSecretKey(account_id=a, name=name, description=f"revision {step}")
        member = users[Role.MEMBER]
        yield cmd.UpdateUser(account_id=a, user_id=member, name=f"Member {n} ({step})")
        temporary = new_id()  # roles change on a contractor: every role stays held
        yield cmd.AddUser(
            account_id=a,
            user_id=temporary,
            name=f"Contractor {step}",
            email=f"contractor{step}.{n}@seed.example",
            role=Role.VIEWER.value,
        )
        promoted = Role.MANAGER if step % 2 else Role.BILLING_ADMIN
        yield cmd.UpdateUser(account_id=a, user_id=temporary, role=promoted.value)
        yield cmd.RemoveUser(account_id=a, user_id=temporary)
        if step % 10 == 0:
            yield cmd.DisableApi(account_id=a)
            yield cmd.EnableApi(account_id=a, key_id="", key_hash="")
