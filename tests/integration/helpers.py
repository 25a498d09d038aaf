"""Builders shared by the integration tests."""

from __future__ import annotations

import time
from dataclasses import dataclass

from keyledger.bootstrap import Container
from keyledger.domain.events import OPERATOR
from keyledger.domain.tokens import CHECKSUM_LENGTH, KeyKind, checksum, generate


@dataclass
class Bootstrapped:
    account_id: str
    owner_id: str
    account_key: str
    secret_key: str
    key_name: str = "owner-key-0001"


def bootstrap(container: Container, name: str = "Acme") -> Bootstrapped:
    """An account with its API enabled and one Owner key, through the ledger."""
    ledger = container.ledger
    account_id, owner_id, _ = ledger.register_account(
        name, "Ann Owner", "ann@example.com", OPERATOR
    )
    account_key, _ = ledger.enable_api(account_id, OPERATOR)
    assert account_key is not None
    secret, _ = ledger.create_secret_key(account_id, "owner-key-0001", owner_id, (), OPERATOR)
    return Bootstrapped(account_id, owner_id, account_key, secret)


def forged(token: str) -> str:
    """A well-formed key (valid layout and checksum) with ``token``'s kind and key id and
    another secret: what anyone can make, since the checksum is not a secret."""
    kind = KeyKind(token[:4])
    other = generate(kind, int(token[5:7], 16)).token
    body = token[:21] + other[21:-CHECKSUM_LENGTH]
    return body + checksum(body)


def early_in_a_minute(needed: float = 10.0) -> None:
    """Wait, if need be, until a burst of ``needed`` seconds fits in the current minute: the
    failure counts live in fixed one-minute windows, and a new window starts from zero."""
    left = 60.0 - time.time() % 60.0
    if left < needed:
        time.sleep(left + 0.05)
