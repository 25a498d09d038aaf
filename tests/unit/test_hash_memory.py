"""The per-process memory of verified keys: exactly how much it holds, and what it reports.

tests/unit/test_hashing.py covers what the memory vouches for (the presented key's keyed
digest, never its key id); these pin its size and its report to the metrics, which
``make mutate`` found unpinned (docs/mutation.md).
"""

from __future__ import annotations

from keyledger.authn.hashing import KeyHasher
from keyledger.domain.tokens import KeyKind, generate
from keyledger.observability.observer import Observer

TOKENS = [generate(KeyKind.SECRET, 1).token for _ in range(3)]


class Recording(Observer):
    def __init__(self) -> None:
        self.cached: list[bool] = []

    def key_verified(self, cached: bool) -> None:
        self.cached.append(cached)


def test_the_memory_holds_exactly_cache_size_keys_and_forgets_the_oldest() -> None:
    hasher = KeyHasher(cache_size=2)
    a, b, c = TOKENS
    hashes = {token: hasher.hash(token) for token in TOKENS}
    for token in (a, b, a, b):
        assert hasher.verify(hashes[token], token)
    assert hasher.argon2_verifications == 2  # both remembered
    assert hasher.verify(hashes[c], c)  # a third: the oldest (a) is forgotten
    assert hasher.verify(hashes[b], b) and hasher.argon2_verifications == 3
    assert hasher.verify(hashes[a], a) and hasher.argon2_verifications == 4


def test_each_check_reports_whether_memory_answered_it() -> None:
    hasher = KeyHasher()
    hasher.observer = observer = Recording()
    token, wrong = TOKENS[0], TOKENS[1]
    stored = hasher.hash(token)
    hasher.verify(stored, token)
    hasher.verify(stored, token)
    hasher.verify(stored, wrong)
    hasher.burn(wrong)
    assert observer.cached == [False, True, False, False]
