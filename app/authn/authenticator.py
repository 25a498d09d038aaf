"""Authenticates one request: parse, look up, verify, then let the policies decide.

Malformed keys are refused before any Redis or argon2 work. The decision's
reason is for the server log only; clients see one identical 401 for every
authentication failure. Repeated failures are throttled (``throttle.Throttle``):
in memory before anything else, and, only when an argon2 verification is about
to run, against the ceiling and the counts every process shares.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from keyledger.adapters.authlookup import AuthLookup, Lookup
from keyledger.authn.hashing import KeyHasher
from keyledger.authn.throttle import Subject, Throttle, ThrottleLimits
from keyledger.domain.tokens import KeyKind, MalformedKey, ParsedKey, parse
from keyledger.policies import (
    account_key_in_grace,
    account_key_valid,
    api_enabled,
    engine,
    key_enabled,
    key_not_expired,
    previous_secret_in_grace,
    same_account,
    secret_key_valid,
)
from keyledger.policies.decision import Decision
from keyledger.policies.facts import AuthFacts

log = logging.getLogger("keyledger.auth")

THROTTLE = "failure_throttle"


#: Which presented key a 401 from each policy is about (0: account key, 1: secret key).
_FAILED_KEY = {
    account_key_valid.NAME: 0,
    account_key_in_grace.NAME: 0,
    api_enabled.NAME: 0,
    secret_key_valid.NAME: 1,
    previous_secret_in_grace.NAME: 1,
    same_account.NAME: 1,
    key_enabled.NAME: 1,
    key_not_expired.NAME: 1,
}


def _failed_key(policy: str, key_ids: tuple[str, ...]) -> tuple[str, ...]:
    """Count a failure against the key that failed only, so that wrong secret keys
    sent with a valid account key do not throttle the account's other keys."""
    index = _FAILED_KEY.get(policy)
    if index is None or len(key_ids) != 2:
        return ()
    return (key_ids[index],)


def _key_ids(*presented: str | None) -> tuple[str, ...]:
    """The public key ids of the presented keys, for throttling (no parsing errors)."""
    ids = []
    for value in presented:
        if value and len(value) >= 21 and value[4] == "_":
            ids.append(value[5:21])
    return tuple(ids)


ACCOUNT_KEY_HEADER = "x-api-key"
SECRET_KEY_HEADER = "x-api-secret-key"  # noqa: S105 (a header name)


@dataclass(frozen=True)
class Principal:
    account_id: str
    account_key_id: str
    secret_key_id: str
    account_name: str
    key_name: str
    user_id: str
    user_name: str
    role: str
    #: When the presented credentials stop working (epoch seconds): the earliest of the
    #: key's expiry and the grace end of a rotated-away secret or account key presented.
    expires_at: float | None = None


def earliest(*moments: float | None) -> float | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None


@dataclass(frozen=True)
class AuthResult:
    decision: Decision
    principal: Principal | None
    #: Seconds a throttled client should wait (with a 429 decision).
    retry_after: int | None = None

    @property
    def allowed(self) -> bool:
        return self.decision.allowed


class Authenticator:
    def __init__(
        self,
        lookup: AuthLookup,
        hasher: KeyHasher,
        policies: tuple[engine.Policy, ...] = engine.DEFAULT_POLICIES,
        throttle: Throttle | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.lookup = lookup
        self.hasher = hasher
        self.policies = policies
        self.throttle = throttle or Throttle(ThrottleLimits())
        self.clock = clock

    def authenticate(
        self,
        *,
        method: str,
        path: str,
        source_ip: str | None,
        account_key: str | None,
        secret_key: str | None,
    ) -> AuthResult:
        source = source_ip or "-"
        key_ids = _key_ids(account_key, secret_key)
        subject = Subject.of(source, key_ids)
        wait = self.throttle.before_lookup(subject)
        if wait is not None:
            return _throttled(wait, "too many failures")
        base = partial(AuthFacts, method=method, path=path, source_ip=source_ip)
        gathered = self._gather(base, subject, account_key, secret_key)
        if isinstance(gathered, AuthResult):
            return gathered
        facts, hashed = gathered
        decision = engine.evaluate(facts, self.policies)
        if not decision.allowed:
            if decision.status == 401:
                failed = Subject.of(source, _failed_key(decision.policy, key_ids))
                self.throttle.failed(failed, hashed=hashed)
            return AuthResult(decision, None)
        # guaranteed by the policies
        assert facts.account and facts.account_key and facts.secret_key and facts.user
        principal = Principal(
            account_id=facts.account.id,
            account_key_id=facts.account_key.key_id,
            secret_key_id=facts.secret_key.key_id,
            account_name=facts.account.name,
            key_name=facts.secret_key.name,
            user_id=facts.user.id,
            user_name=facts.user.name,
            role=facts.user.role,
            expires_at=earliest(
                facts.secret_key.expires_at,
                None if facts.secret_key_verified else facts.secret_key.previous_expires_at,
                facts.account_key.expires_at,
            ),
        )
        return AuthResult(decision, principal)

    def _gather(
        self,
        base: partial[AuthFacts],
        subject: Subject,
        account_key: str | None,
        secret_key: str | None,
    ) -> tuple[AuthFacts, bool] | AuthResult:
        """The facts, and whether argon2 ran for them; or the 429 when it may not run now."""
        if not account_key or not secret_key:
            return base(credentials_problem="missing key header"), False
        try:
            ak = parse(account_key, KeyKind.ACCOUNT)
            sk = parse(secret_key, KeyKind.SECRET)
        except MalformedKey as exc:
            return base(credentials_problem=f"malformed key: {exc}"), False
        found = self.lookup.fetch(ak.key_id, sk.key_id)
        matched = self._remembered(found, ak, sk)
        if matched is not None:  # the warm path: both keys verified here before
            return self._facts(base, found, True, matched), False
        wait = self.throttle.before_hashing(subject)
        if wait is not None:
            return _throttled(wait, "failed verifications throttled before hashing")
        facts = self._verified_facts(base, found, ak, sk)
        if facts.secret_key_verified or facts.previous_secret_verified:
            self.throttle.verified()  # a secret matched: not a failed verification
        return facts, True

    def _remembered(self, found: Lookup, ak: ParsedKey, sk: ParsedKey) -> int | None:
        """When this process verified both keys before (no argon2 will run): which secret
        the secret key matched (0: the current one, 1: the previous one); else None."""
        if found.account_key_hash is None:
            return None
        if self.hasher.recall((found.account_key_hash,), ak.token) is None:
            return None
        matched = self.hasher.recall(_secret_hashes(found), sk.token)
        if matched is not None:
            self.hasher.recalled(2)  # else both are verified (and counted) by the cold path
        return matched

    def _verify(self, stored_hash: str | None, token: str) -> bool:
        if stored_hash is None:
            self.hasher.burn(token)
            return False
        return self.hasher.verify(stored_hash, token)

    def _verified_facts(
        self, base: partial[AuthFacts], found: Lookup, ak: ParsedKey, sk: ParsedKey
    ) -> AuthFacts:
        # Every refusal of a well-formed key costs one argon2 computation, whether
        # the key id is unknown or the secret is wrong, so timing does not tell
        # them apart; the secret key is only looked at once the account key passed.
        ak_ok = self._verify(found.account_key_hash, ak.token)
        matched = self._verify_secret(found, sk.token) if ak_ok else None
        return self._facts(base, found, ak_ok, matched)

    def _facts(
        self, base: partial[AuthFacts], found: Lookup, ak_ok: bool, matched: int | None
    ) -> AuthFacts:
        return base(
            account_key=found.account_key,
            account_key_verified=ak_ok,
            account=found.account,
            secret_key=found.secret_key,
            secret_key_verified=matched == 0,
            previous_secret_verified=matched == 1,
            user=found.user,
            now=self.clock(),
        )

    def _verify_secret(self, found: Lookup, token: str) -> int | None:
        """0: the current secret, 1: the previous one (while the record holds it), None."""
        hashes = _secret_hashes(found)
        if not hashes:
            self.hasher.burn(token)
            return None
        return self.hasher.verify_any(hashes, token)


def _secret_hashes(found: Lookup) -> tuple[str, ...]:
    """The hashes a secret key may match: the current one, then the previous (in a grace)."""
    if found.secret_key_hash is None:
        return ()
    if found.previous_secret_hash is None:
        return (found.secret_key_hash,)
    return (found.secret_key_hash, found.previous_secret_hash)


def _throttled(wait: int, reason: str) -> AuthResult:
    return AuthResult(Decision.deny(THROTTLE, reason, 429), None, wait)
