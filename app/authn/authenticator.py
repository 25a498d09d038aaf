"""Authenticates one request: parse, look up, verify, then let the policies decide.

Malformed keys are refused before any Redis or argon2 work. The decision's
reason is for the server log only; clients see one identical 401 for every
authentication failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from app.adapters.authlookup import AuthLookup, Lookup
from app.authn.hashing import KeyHasher
from app.domain.tokens import KeyKind, MalformedKey, parse
from policies import engine
from policies.decision import Decision
from policies.facts import AuthFacts

log = logging.getLogger("keyledger.auth")

ACCOUNT_KEY_HEADER = "x-api-key"
SECRET_KEY_HEADER = "x-api-secret-key"  # noqa: S105 (a header name)


@dataclass(frozen=True)
class Principal:
    account_id: str
    account_name: str
    key_name: str
    user_id: str
    user_name: str
    role: str


@dataclass(frozen=True)
class AuthResult:
    decision: Decision
    principal: Principal | None

    @property
    def allowed(self) -> bool:
        return self.decision.allowed


class Authenticator:
    def __init__(
        self,
        lookup: AuthLookup,
        hasher: KeyHasher,
        policies: tuple[engine.Policy, ...] = engine.DEFAULT_POLICIES,
    ):
        self.lookup = lookup
        self.hasher = hasher
        self.policies = policies

    def authenticate(
        self,
        *,
        method: str,
        path: str,
        source_ip: str | None,
        account_key: str | None,
        secret_key: str | None,
    ) -> AuthResult:
        facts = self._gather(method, path, source_ip, account_key, secret_key)
        decision = engine.evaluate(facts, self.policies)
        if not decision.allowed:
            return AuthResult(decision, None)
        assert facts.account and facts.secret_key and facts.user  # guaranteed by the policies
        principal = Principal(
            account_id=facts.account.id,
            account_name=facts.account.name,
            key_name=facts.secret_key.name,
            user_id=facts.user.id,
            user_name=facts.user.name,
            role=facts.user.role,
        )
        return AuthResult(decision, principal)

    def _gather(
        self,
        method: str,
        path: str,
        source_ip: str | None,
        account_key: str | None,
        secret_key: str | None,
    ) -> AuthFacts:
        base = partial(AuthFacts, method=method, path=path, source_ip=source_ip)
        if not account_key or not secret_key:
            return base(credentials_problem="missing key header")
        try:
            ak = parse(account_key, KeyKind.ACCOUNT)
            sk = parse(secret_key, KeyKind.SECRET)
        except MalformedKey as exc:
            return base(credentials_problem=f"malformed key: {exc}")
        found: Lookup = self.lookup.fetch(ak.key_id, sk.key_id)
        ak_ok = found.account_key_hash is not None and self.hasher.verify(
            found.account_key_hash, ak.token
        )
        # Verify the secret key only when the account key passed: no argon2 work is
        # spent on requests that are already refused.
        sk_ok = (
            ak_ok
            and found.secret_key_hash is not None
            and self.hasher.verify(found.secret_key_hash, sk.token)
        )
        return base(
            account_key=found.account_key,
            account_key_verified=ak_ok,
            account=found.account,
            secret_key=found.secret_key,
            secret_key_verified=sk_ok,
            user=found.user,
        )
