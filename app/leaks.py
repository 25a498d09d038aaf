"""What happens to keys a secret scanner found in public (GitHub's partner program).

For each reported token: is it a keyledger key at all (prefix, layout and checksum:
``token_type``), and one that keyledger issued (its stored argon2id hash matches:
``true_positive``)? A live secret key is revoked on the spot (``SecretKeyRevoked``,
reason ``leaked``; a previous secret still in its grace period only loses its grace);
an account key is recorded as reported leaked but keeps working, since revoking it
would cut off the whole account and it is useless without a secret key: the
operator rotates it with a grace period. Each decision is the ledger's, against the
account's current state, so a repeated report of the same token is a true positive
again and records nothing new (a revoked key leaves its hash behind for this).

No token is ever logged, stored or echoed: answers carry its SHA-256 only.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from keyledger.adapters.authlookup import ACCOUNT_KEY, SECRET_KEY, AuthLookup
from keyledger.authn.hashing import KeyHasher
from keyledger.domain.errors import ConcurrencyConflict
from keyledger.domain.events import SECRET_SCANNING
from keyledger.domain.tokens import KeyKind, MalformedKey, ParsedKey, parse
from keyledger.observability.logs import redact_keys
from keyledger.service import Ledger, Outcome

log = logging.getLogger("keyledger.scanning")

SECRET_TYPE, ACCOUNT_TYPE, UNKNOWN_TYPE = (
    "keyledger_secret_key",
    "keyledger_account_key",
    "unknown",
)
REVOKED = "revoked"
ATTEMPTS = 3  # a concurrent change to the account is retried


@dataclass(frozen=True)
class Finding:
    token: str
    url: str


@dataclass(frozen=True)
class Verdict:
    token_hash: str
    token_type: str
    true_positive: bool

    def as_json(self) -> dict[str, str]:
        return {
            "token_hash": self.token_hash,
            "token_type": self.token_type,
            "label": "true_positive" if self.true_positive else "false_positive",
        }


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def recognise(token: str) -> ParsedKey | None:
    for kind in (KeyKind.SECRET, KeyKind.ACCOUNT):
        try:
            return parse(token, kind)
        except MalformedKey:
            continue
    return None


class LeakReports:
    def __init__(self, ledger: Ledger, lookup: AuthLookup, hasher: KeyHasher):
        self.ledger = ledger
        self.lookup = lookup
        self.hasher = hasher

    def handle(self, findings: list[Finding]) -> list[Verdict]:
        """One verdict per finding, in order; a token reported twice is handled once."""
        done: dict[str, Verdict] = {}
        verdicts = []
        for finding in findings:
            verdict = done.get(finding.token)
            if verdict is None:
                verdict = done[finding.token] = self._handle(finding)
            verdicts.append(verdict)
        return verdicts

    def _handle(self, finding: Finding) -> Verdict:
        digest = token_hash(finding.token)
        parsed = recognise(finding.token)
        if parsed is None:
            return Verdict(digest, UNKNOWN_TYPE, False)
        if parsed.kind is KeyKind.SECRET:
            return Verdict(digest, SECRET_TYPE, self._secret(parsed, finding.url))
        return Verdict(digest, ACCOUNT_TYPE, self._account(parsed, finding.url))

    def _secret(self, key: ParsedKey, url: str) -> bool:
        record = self.lookup.key_record(key.key_id)
        kind, account = record.get("kind"), record.get("account", "")
        if kind == REVOKED:
            return self.hasher.verify(record.get("hash", ""), key.token)
        if kind != SECRET_KEY:
            return False
        hashes = tuple(
            value
            for value in (record.get("hash"), record.get("prev_hash"), record.get("leaked_hash"))
            if value
        )
        matched = self.hasher.verify_any(hashes, key.token)
        if matched is None:
            return False
        # The ledger decides against the account's state: a secret already revoked
        # (a repeated report, or ``leaked_hash``) records nothing.
        self._retry(
            lambda: self.ledger.revoke_leaked_secret(
                account, key.key_id, hashes[matched], url, SECRET_SCANNING
            )
        )
        name = redact_keys(str(record.get("name")))  # a name made before names were checked
        log.warning("API key %r of account %s reported leaked", name, account)
        return True

    def _account(self, key: ParsedKey, url: str) -> bool:
        record = self.lookup.key_record(key.key_id)
        if record.get("kind") != ACCOUNT_KEY or not self.hasher.verify(
            record.get("hash", ""), key.token
        ):
            return False
        account = record.get("account", "")
        self._retry(
            lambda: self.ledger.report_leaked_account_key(account, key.key_id, url, SECRET_SCANNING)
        )
        log.warning("the account key of account %s was reported leaked", account)
        return True

    @staticmethod
    def _retry(change: Callable[[], Outcome]) -> Outcome:
        for _attempt in range(ATTEMPTS - 1):
            try:
                return change()
            except ConcurrencyConflict:
                continue
        return change()
