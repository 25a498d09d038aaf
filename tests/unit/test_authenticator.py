"""The authenticator without Redis: what it asks the throttle, what it hashes, what it returns.

The lookup is a dictionary of projected records; argon2 and the throttle are the real
ones, watched through a subclass that records every question (found by ``make mutate``:
before these, only the integration tests pinned each step, and some not at all).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace

import pytest

from keyledger.adapters.authlookup import Lookup
from keyledger.authn.authenticator import (
    THROTTLE,
    Authenticator,
    _failed_key,
    _key_ids,
    earliest,
)
from keyledger.authn.hashing import KeyHasher
from keyledger.authn.throttle import Subject, Tally, Throttle, ThrottleLimits
from keyledger.domain.tokens import KeyKind, ParsedKey, generate
from keyledger.policies import (
    account_key_in_grace,
    account_key_valid,
    api_enabled,
    key_enabled,
    key_not_expired,
    previous_secret_in_grace,
    role_permits,
    same_account,
    secret_key_valid,
)
from keyledger.policies.facts import AccountKeyRecord, AccountRecord, SecretKeyRecord, UserRecord

NOW = 1_700_000_000.0
SOURCE = "10.2.5.7"


class RecordingThrottle(Throttle):
    """The real throttle, recording what the authenticator asks and tells it."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(ThrottleLimits(), **kwargs)  # type: ignore[arg-type]
        self.calls: list[tuple[str, object]] = []
        self.lookup_wait: int | None = None
        self.hashing_wait: int | None = None

    def before_lookup(self, subject: Subject) -> int | None:
        self.calls.append(("before_lookup", subject))
        return self.lookup_wait if self.lookup_wait is not None else super().before_lookup(subject)

    def before_hashing(self, subject: Subject) -> int | None:
        self.calls.append(("before_hashing", subject))
        return (
            self.hashing_wait if self.hashing_wait is not None else super().before_hashing(subject)
        )

    def verified(self) -> None:
        self.calls.append(("verified", None))
        super().verified()

    def failed(self, subject: Subject, *, hashed: bool) -> None:
        self.calls.append(("failed", (subject, hashed)))
        super().failed(subject, hashed=hashed)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@dataclass
class FakeLookup:
    found: Lookup
    fetched: list[tuple[str, str]] = field(default_factory=list)

    def fetch(self, account_key_id: str, secret_key_id: str) -> Lookup:
        self.fetched.append((account_key_id, secret_key_id))
        return self.found


@dataclass
class World:
    account_key: ParsedKey
    secret_key: ParsedKey
    lookup: FakeLookup
    hasher: KeyHasher
    throttle: RecordingThrottle
    authenticator: Authenticator

    def ask(
        self,
        account_key: str | None = None,
        secret_key: str | None = None,
        *,
        method: str = "GET",
        source: str | None = SOURCE,
    ):  # type: ignore[no-untyped-def]
        return self.authenticator.authenticate(
            method=method,
            path="/v1/users",
            source_ip=source,
            account_key=self.account_key.token if account_key is None else account_key,
            secret_key=self.secret_key.token if secret_key is None else secret_key,
        )


@pytest.fixture(scope="module")
def hashes() -> tuple[ParsedKey, ParsedKey, str, str]:
    hasher = KeyHasher()
    ak, sk = generate(KeyKind.ACCOUNT, 1), generate(KeyKind.SECRET, 1)
    return ak, sk, hasher.hash(ak.token), hasher.hash(sk.token)


def world_of(hashes: tuple[ParsedKey, ParsedKey, str, str], role: str = "Owner", **changes):  # type: ignore[no-untyped-def]
    ak, sk, ak_hash, sk_hash = hashes
    found = Lookup(
        account_key=AccountKeyRecord(ak.key_id, "acc-1"),
        account_key_hash=ak_hash,
        account=AccountRecord("acc-1", "Acme", True),
        secret_key=SecretKeyRecord(sk.key_id, "acc-1", "ann-key", "u-1", ()),
        secret_key_hash=sk_hash,
        user=UserRecord("u-1", "acc-1", "Ann", role),
    )
    lookup = FakeLookup(replace(found, **changes))
    hasher = KeyHasher()
    throttle = RecordingThrottle(monotonic=lambda: 0.0)
    authenticator = Authenticator(lookup, hasher, throttle=throttle, clock=lambda: NOW)  # type: ignore[arg-type]
    return World(ak, sk, lookup, hasher, throttle, authenticator)


@pytest.fixture
def world(hashes: tuple[ParsedKey, ParsedKey, str, str]) -> World:
    return world_of(hashes)


# -- helpers ---------------------------------------------------------------------------------
def test_earliest_is_the_first_known_moment() -> None:
    assert earliest() is None
    assert earliest(None, None) is None
    assert earliest(None, 5.0, 3.0) == 3.0
    assert earliest(3.0, None, 5.0) == 3.0


def test_key_ids_are_taken_from_anything_shaped_like_a_key() -> None:
    assert _key_ids(None, "", "short") == ()
    assert _key_ids("klak_" + "a" * 16) == ("a" * 16,)  # 21 characters: just enough
    assert _key_ids("klak_" + "a" * 15) == ()
    assert _key_ids("klak-" + "a" * 30) == ()
    assert _key_ids("klakx" + "a" * 30) == ()  # the fifth character is "_", no other
    assert _key_ids("klak_0123456789abcdefREST", "klsk_fedcba9876543210REST") == (
        "0123456789abcdef",
        "fedcba9876543210",
    )


@pytest.mark.parametrize(
    ("policy", "counted"),
    [
        (account_key_valid.NAME, "account-id"),
        (account_key_in_grace.NAME, "account-id"),
        (api_enabled.NAME, "account-id"),
        (secret_key_valid.NAME, "secret-id"),
        (previous_secret_in_grace.NAME, "secret-id"),
        (same_account.NAME, "secret-id"),
        (key_enabled.NAME, "secret-id"),
        (key_not_expired.NAME, "secret-id"),
    ],
)
def test_a_failure_counts_against_the_key_that_failed_only(policy: str, counted: str) -> None:
    assert _failed_key(policy, ("account-id", "secret-id")) == (counted,)
    assert _failed_key(policy, ("account-id",)) == ()


def test_a_failure_before_any_key_was_looked_at_counts_against_no_key() -> None:
    assert _failed_key("credentials_present", ("account-id", "secret-id")) == ()
    assert _failed_key(role_permits.NAME, ("account-id", "secret-id")) == ()


# -- the order of the steps ----------------------------------------------------------------
def test_a_valid_request_is_allowed_with_its_principal(world: World) -> None:
    result = world.ask()
    assert result.allowed and result.retry_after is None
    principal = result.principal
    assert principal is not None
    assert (principal.account_id, principal.account_key_id, principal.secret_key_id) == (
        "acc-1",
        world.account_key.key_id,
        world.secret_key.key_id,
    )
    assert (principal.account_name, principal.key_name) == ("Acme", "ann-key")
    assert (principal.user_id, principal.user_name, principal.role) == ("u-1", "Ann", "Owner")
    assert principal.expires_at is None
    assert world.lookup.fetched == [(world.account_key.key_id, world.secret_key.key_id)]


def test_a_first_verification_asks_the_ceiling_and_gives_its_token_back(world: World) -> None:
    world.ask()
    assert world.throttle.names() == ["before_lookup", "before_hashing", "verified"]
    assert world.hasher.argon2_verifications == 2


def test_a_remembered_pair_skips_the_ceiling_and_argon2(world: World) -> None:
    world.ask()
    world.throttle.calls.clear()
    assert world.ask().allowed
    assert world.throttle.names() == ["before_lookup"]
    assert world.hasher.argon2_verifications == 2


def test_a_remembered_account_key_with_a_new_secret_still_runs_argon2(
    world: World, hashes: tuple[ParsedKey, ParsedKey, str, str]
) -> None:
    world.ask()
    world.throttle.calls.clear()
    wrong = generate(KeyKind.SECRET, 1, world.secret_key.key_id).token
    result = world.ask(secret_key=wrong)
    assert result.decision.policy == secret_key_valid.NAME
    assert "before_hashing" in world.throttle.names()
    assert world.hasher.argon2_verifications == 3


def test_a_throttled_source_is_refused_before_any_lookup(world: World) -> None:
    world.throttle.lookup_wait = 17
    result = world.ask()
    assert not result.allowed and result.principal is None
    assert (result.decision.policy, result.decision.status, result.retry_after) == (
        THROTTLE,
        429,
        17,
    )
    assert world.lookup.fetched == [] and world.hasher.argon2_verifications == 0


def test_the_throttle_is_asked_about_the_source_and_both_key_ids(world: World) -> None:
    world.ask(source=None)
    name, subject = world.throttle.calls[0]
    assert name == "before_lookup"
    assert subject == Subject.of("-", (world.account_key.key_id, world.secret_key.key_id))


def test_past_the_ceiling_a_fresh_verification_is_429_without_hashing(world: World) -> None:
    world.throttle.hashing_wait = 3
    result = world.ask()
    assert (result.decision.status, result.retry_after, result.principal) == (429, 3, None)
    assert world.hasher.argon2_verifications == 0
    assert "failed" not in world.throttle.names()


@pytest.mark.parametrize(
    ("account_key", "secret_key"),
    [("", "x"), ("x", ""), ("klak_" + "a" * 40, "klsk_" + "b" * 40)],
)
def test_missing_or_malformed_keys_are_refused_without_lookup_or_hashing(
    world: World, account_key: str, secret_key: str
) -> None:
    result = world.ask(account_key, secret_key)
    assert (result.decision.policy, result.decision.status) == ("credentials_present", 401)
    assert world.lookup.fetched == [] and world.hasher.argon2_verifications == 0
    assert world.throttle.calls[-1] == ("failed", (Subject.of(SOURCE, ()), False))


def test_a_wrong_secret_counts_against_the_secret_key_after_hashing(world: World) -> None:
    wrong = generate(KeyKind.SECRET, 1, world.secret_key.key_id).token
    result = world.ask(secret_key=wrong)
    assert (result.decision.policy, result.decision.status) == (secret_key_valid.NAME, 401)
    assert world.throttle.calls[-1] == (
        "failed",
        (Subject.of(SOURCE, (world.secret_key.key_id,)), True),
    )
    assert "verified" not in world.throttle.names()


def test_a_wrong_account_key_is_hashed_once_and_the_secret_never(world: World) -> None:
    wrong = generate(KeyKind.ACCOUNT, 1, world.account_key.key_id).token
    result = world.ask(account_key=wrong)
    assert result.decision.policy == account_key_valid.NAME
    assert world.hasher.argon2_verifications == 1
    assert world.throttle.calls[-1] == (
        "failed",
        (Subject.of(SOURCE, (world.account_key.key_id,)), True),
    )


def test_an_unknown_account_key_costs_one_hash_all_the_same(
    hashes: tuple[ParsedKey, ParsedKey, str, str],
) -> None:
    world = world_of(hashes, account_key=None, account_key_hash=None)
    assert world.ask().decision.policy == account_key_valid.NAME
    assert world.hasher.argon2_verifications == 1


def test_an_unknown_secret_key_costs_one_hash_all_the_same(
    hashes: tuple[ParsedKey, ParsedKey, str, str],
) -> None:
    world = world_of(hashes, secret_key=None, secret_key_hash=None)
    assert world.ask().decision.policy == secret_key_valid.NAME
    assert world.hasher.argon2_verifications == 2


def test_a_refusal_by_role_is_403_and_not_a_failure(
    hashes: tuple[ParsedKey, ParsedKey, str, str],
) -> None:
    world = world_of(hashes, role="Viewer")
    result = world.ask(method="POST")
    assert (result.decision.policy, result.decision.status) == (role_permits.NAME, 403)
    assert "failed" not in world.throttle.names()


def test_a_previous_secret_in_its_grace_is_accepted_until_the_grace_ends(
    hashes: tuple[ParsedKey, ParsedKey, str, str],
) -> None:
    ak, sk, _, sk_hash = hashes
    current = generate(KeyKind.SECRET, 1, sk.key_id)
    world = world_of(
        hashes,
        secret_key_hash=KeyHasher().hash(current.token),
        previous_secret_hash=sk_hash,
        secret_key=SecretKeyRecord(
            sk.key_id,
            "acc-1",
            "ann-key",
            "u-1",
            (),
            expires_at=NOW + 500,
            previous_expires_at=NOW + 60,
        ),
        account_key=AccountKeyRecord(ak.key_id, "acc-1", expires_at=NOW + 90),
    )
    old = world.ask()
    assert old.allowed and old.principal is not None
    assert old.principal.expires_at == NOW + 60  # the grace ends first
    new = world.ask(secret_key=current.token)
    assert new.allowed and new.principal is not None
    assert new.principal.expires_at == NOW + 90  # the account key's grace, not the old secret's
    assert world.throttle.names().count("verified") == 2


def test_the_expiry_is_the_keys_own_when_it_comes_first(
    hashes: tuple[ParsedKey, ParsedKey, str, str],
) -> None:
    ak, sk, _, _ = hashes
    world = world_of(
        hashes,
        secret_key=SecretKeyRecord(sk.key_id, "acc-1", "ann-key", "u-1", (), expires_at=NOW + 30),
        account_key=AccountKeyRecord(ak.key_id, "acc-1", expires_at=NOW + 90),
    )
    result = world.ask()
    assert result.principal is not None and result.principal.expires_at == NOW + 30


def test_a_shared_tally_past_the_limit_is_429_before_hashing(
    hashes: tuple[ParsedKey, ParsedKey, str, str],
) -> None:
    class Exceeded:
        def read(self, subject: Subject) -> Tally:
            return Tally(0, 10_000, (0,) * len(subject.key_ids), 42)

        def add(self, subject: Subject) -> Tally:  # pragma: no cover - never reached
            raise AssertionError("nothing was hashed")

    world = world_of(hashes)
    world.authenticator.throttle = Throttle(ThrottleLimits(), Exceeded())
    result = world.ask()
    assert (result.decision.status, result.retry_after) == (429, 42)
    assert world.hasher.argon2_verifications == 0


def test_a_refusal_of_a_remembered_pair_is_counted_as_costing_no_hash(world: World) -> None:
    # Only failures that ran argon2 go to the counts every process shares (a Redis trip).
    assert world.ask().allowed
    world.lookup.found = replace(
        world.lookup.found, secret_key=replace(world.lookup.found.secret_key, enabled=False)
    )
    world.throttle.calls.clear()
    result = world.ask()
    assert (result.decision.policy, result.decision.status) == ("key_enabled", 401)
    assert world.throttle.calls[-1] == (
        "failed",
        (Subject.of(SOURCE, (world.secret_key.key_id,)), False),
    )
    assert world.hasher.argon2_verifications == 2


def test_the_result_and_its_principal_cannot_be_changed_once_made(world: World) -> None:
    # They travel from the authenticator to the views and the forward-auth headers.
    result = world.ask()
    principal = result.principal
    assert principal is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        principal.role = "Owner"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.retry_after = None  # type: ignore[misc]


@pytest.mark.parametrize(("account_key", "secret_key"), [("", "x"), ("x", ""), ("", "")])
def test_a_missing_header_is_logged_as_missing_not_malformed(
    world: World, account_key: str, secret_key: str
) -> None:
    assert world.ask(account_key, secret_key).decision.reason == "missing key header"
