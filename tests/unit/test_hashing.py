"""argon2id at rest with parameters sized to a 256-bit secret (docs/hashing.md), older
OWASP-parameter hashes still verified, each key verified once per process."""

from __future__ import annotations

import base64
import hashlib

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from keyledger.authn.hashing import (
    ACCEPTED_PREFIXES,
    MEMORY_COST,
    OWASP_PREFIX,
    PARALLELISM,
    POLICY_PREFIX,
    TIME_COST,
    KeyHasher,
)
from keyledger.domain.tokens import KeyKind, checksum, generate

TOKEN = generate(KeyKind.SECRET, 1).token
OTHER_TOKEN = generate(KeyKind.SECRET, 1).token


@pytest.fixture
def hasher() -> KeyHasher:
    return KeyHasher()


@pytest.fixture(scope="module")
def stored_hash() -> str:
    return KeyHasher().hash(TOKEN)


def foreign_hash(token: str, **parameters: int) -> str:
    settings = {"time_cost": TIME_COST, "memory_cost": MEMORY_COST, "parallelism": PARALLELISM}
    settings.update(parameters)
    return PasswordHasher(**settings, type=Type.ID).hash(token)  # type: ignore[arg-type]


# -- hashing ----------------------------------------------------------------------------


def test_policy_is_argon2id_with_one_pass_over_256_kib() -> None:
    assert (MEMORY_COST, TIME_COST, PARALLELISM) == (256, 1, 1)
    assert POLICY_PREFIX == "$argon2id$v=19$m=256,t=1,p=1$"


def test_the_accepted_parameter_sets_are_the_policy_and_the_earlier_owasp_minimum() -> None:
    assert OWASP_PREFIX == "$argon2id$v=19$m=19456,t=2,p=1$"
    assert ACCEPTED_PREFIXES == (POLICY_PREFIX, OWASP_PREFIX)


def test_hash_is_an_argon2id_phc_string_with_the_policy_parameters(stored_hash: str) -> None:
    assert stored_hash.startswith(POLICY_PREFIX)
    parameters = extract_parameters(stored_hash)
    assert parameters.type is Type.ID
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (256, 1, 1)


def owasp_hash(token: str) -> str:
    """A key hashed as keyledger hashed them before (argon2-cffi, OWASP minimum)."""
    return PasswordHasher(
        time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
    ).hash(token)


def test_a_hash_stored_with_the_earlier_owasp_parameters_still_verifies(hasher: KeyHasher) -> None:
    old = owasp_hash(TOKEN)
    assert old.startswith(OWASP_PREFIX)
    assert hasher.verify(old, TOKEN) is True
    assert hasher.argon2_verifications == 1


def test_a_hash_stored_with_the_earlier_owasp_parameters_refuses_another_token(
    hasher: KeyHasher,
) -> None:
    assert hasher.verify(owasp_hash(TOKEN), OTHER_TOKEN) is False


def test_the_decoy_for_unknown_key_ids_costs_what_a_new_hash_costs(hasher: KeyHasher) -> None:
    """An unknown key id and a wrong secret for a key hashed today run the same argon2."""
    assert hasher._decoy.startswith(POLICY_PREFIX)
    hasher.burn(OTHER_TOKEN)
    assert hasher.argon2_verifications == 1


def test_hash_never_contains_the_token(stored_hash: str) -> None:
    assert TOKEN not in stored_hash
    assert TOKEN[10:50] not in stored_hash


def test_hashing_the_same_token_twice_gives_different_salted_hashes(
    hasher: KeyHasher, stored_hash: str
) -> None:
    assert hasher.hash(TOKEN) != stored_hash


# -- verification -----------------------------------------------------------------------


def test_verify_accepts_the_right_token(hasher: KeyHasher, stored_hash: str) -> None:
    assert hasher.verify(stored_hash, TOKEN) is True


def test_verify_refuses_another_token(hasher: KeyHasher, stored_hash: str) -> None:
    assert hasher.verify(stored_hash, OTHER_TOKEN) is False


def test_verify_refuses_a_token_differing_in_one_character(
    hasher: KeyHasher, stored_hash: str
) -> None:
    almost = TOKEN[:-1] + ("A" if TOKEN[-1] != "A" else "B")
    assert hasher.verify(stored_hash, almost) is False


def test_first_verification_runs_argon2(hasher: KeyHasher, stored_hash: str) -> None:
    hasher.verify(stored_hash, TOKEN)
    assert hasher.argon2_verifications == 1


def test_second_verification_of_the_same_key_does_not_run_argon2_again(
    hasher: KeyHasher, stored_hash: str
) -> None:
    assert hasher.verify(stored_hash, TOKEN)
    assert hasher.verify(stored_hash, TOKEN)
    assert hasher.verify(stored_hash, TOKEN)
    assert hasher.argon2_verifications == 1


def test_a_failed_verification_is_not_remembered(hasher: KeyHasher, stored_hash: str) -> None:
    assert not hasher.verify(stored_hash, OTHER_TOKEN)
    assert not hasher.verify(stored_hash, OTHER_TOKEN)
    assert hasher.argon2_verifications == 2


def test_a_remembered_key_is_not_accepted_when_the_stored_hash_changed(
    hasher: KeyHasher, stored_hash: str
) -> None:
    assert hasher.verify(stored_hash, TOKEN)
    rotated = hasher.hash(OTHER_TOKEN)
    assert hasher.verify(rotated, TOKEN) is False


def test_a_remembered_key_is_checked_again_against_a_changed_hash(
    hasher: KeyHasher, stored_hash: str
) -> None:
    hasher.verify(stored_hash, TOKEN)
    rehashed = hasher.hash(TOKEN)
    assert hasher.verify(rehashed, TOKEN) is True
    assert hasher.argon2_verifications == 2


def same_key_id_other_secret(token: str) -> str:
    """Anyone can make this: the key id is public and the checksum is no secret."""
    other = generate(KeyKind(token[:4]), int(token[5:7], 16)).token
    body = token[:21] + other[21:-6]
    return body + checksum(body)


def test_a_remembered_key_vouches_for_that_key_only_not_for_its_key_id(
    hasher: KeyHasher, stored_hash: str
) -> None:
    assert hasher.verify(stored_hash, TOKEN)
    impostor = same_key_id_other_secret(TOKEN)
    assert impostor[5:21] == TOKEN[5:21] and impostor != TOKEN
    assert hasher.verify(stored_hash, impostor) is False
    assert hasher.argon2_verifications == 2  # it was checked, not taken from memory
    assert hasher.recall((stored_hash,), TOKEN) is not None
    assert hasher.recall((stored_hash,), impostor) is None


def test_recall_answers_from_memory_only_and_names_the_hash_matched(
    hasher: KeyHasher, stored_hash: str
) -> None:
    """The warm path asks ``recall``: it never runs argon2, and tells which stored hash
    (the current secret, or the previous one in a grace) the key was verified against."""
    previous = hasher.hash(TOKEN)
    impostor = same_key_id_other_secret(TOKEN)
    assert hasher.recall((stored_hash, previous), TOKEN) is None
    assert hasher.argon2_verifications == 0
    assert hasher.verify_any((stored_hash, previous), TOKEN) == 0
    assert hasher.recall((stored_hash, previous), TOKEN) == 0
    assert hasher.recall((previous, stored_hash), TOKEN) == 1
    assert hasher.recall((previous,), TOKEN) is None  # verified against another hash
    assert hasher.recall((stored_hash,), impostor) is None
    assert hasher.argon2_verifications == 1


def test_the_memory_of_verified_keys_is_keyed_with_a_per_process_pepper() -> None:
    """What the memory holds (a process's heap, a core dump) must not be an unkeyed
    digest an attacker could compute from a guessed key, nor the same in two processes."""
    first, second = KeyHasher(), KeyHasher()
    unkeyed = {
        hashlib.blake2b(TOKEN.encode(), digest_size=32).digest(),
        hashlib.sha256(TOKEN.encode()).digest(),
    }
    assert first._digest(TOKEN) not in unkeyed
    assert first._digest(TOKEN) != second._digest(TOKEN)
    assert first._digest(TOKEN) == first._digest(TOKEN)
    assert TOKEN.encode() not in first._digest(TOKEN)


def test_remembered_successes_are_kept_per_process(stored_hash: str) -> None:
    first, second = KeyHasher(), KeyHasher()
    first.verify(stored_hash, TOKEN)
    second.verify(stored_hash, TOKEN)
    assert (first.argon2_verifications, second.argon2_verifications) == (1, 1)


def test_memory_of_successes_is_bounded(stored_hash: str) -> None:
    hasher = KeyHasher(cache_size=1)
    other_hash = hasher.hash(OTHER_TOKEN)
    hasher.verify(stored_hash, TOKEN)
    hasher.verify(other_hash, OTHER_TOKEN)  # pushes TOKEN out
    hasher.verify(stored_hash, TOKEN)
    assert hasher.argon2_verifications == 3


def test_the_least_recently_used_success_is_forgotten_first(stored_hash: str) -> None:
    hasher = KeyHasher(cache_size=2)
    other_hash, third_hash = hasher.hash(OTHER_TOKEN), hasher.hash("third-token")
    hasher.verify(stored_hash, TOKEN)
    hasher.verify(other_hash, OTHER_TOKEN)
    hasher.verify(stored_hash, TOKEN)  # TOKEN is now the most recently used
    hasher.verify(third_hash, "third-token")  # so OTHER_TOKEN is the one forgotten
    hasher.verify(stored_hash, TOKEN)
    assert hasher.argon2_verifications == 3
    hasher.verify(other_hash, OTHER_TOKEN)
    assert hasher.argon2_verifications == 4


@pytest.mark.parametrize(
    "parameters",
    [
        {"memory_cost": 65536},
        {"memory_cost": 512},
        {"memory_cost": 19456},
        {"time_cost": 2},
        {"time_cost": 3},
        {"parallelism": 2},
        {"memory_cost": 19456, "time_cost": 1},
        {"memory_cost": 19456, "time_cost": 2, "parallelism": 2},
    ],
    ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()),
)
def test_stored_hash_with_other_parameters_is_refused_without_computing(
    hasher: KeyHasher, parameters: dict[str, int]
) -> None:
    other = foreign_hash(TOKEN, **parameters)
    assert hasher.verify(other, TOKEN) is False
    assert hasher.argon2_verifications == 0


def test_argon2i_hash_is_refused_without_computing(hasher: KeyHasher) -> None:
    other = PasswordHasher(
        time_cost=TIME_COST, memory_cost=MEMORY_COST, parallelism=PARALLELISM, type=Type.I
    ).hash(TOKEN)
    assert hasher.verify(other, TOKEN) is False
    assert hasher.argon2_verifications == 0


@pytest.mark.parametrize("huge", ["m=262144", "m=4194304"])
def test_tampered_huge_memory_hash_is_refused_without_computing(
    hasher: KeyHasher, stored_hash: str, huge: str
) -> None:
    tampered = stored_hash.replace(f"m={MEMORY_COST},", f"{huge},")
    assert tampered != stored_hash

    class Refuses:
        """argon2 must not even be called for such a hash."""

        def verify(self, hash_: str, token: str) -> bool:
            raise AssertionError("argon2 ran on a hash with foreign parameters")

    hasher._hasher = Refuses()  # type: ignore[assignment]
    assert hasher.verify(tampered, TOKEN) is False
    assert hasher.verify(owasp_hash(TOKEN).replace("m=19456,", f"{huge},"), TOKEN) is False
    assert hasher.argon2_verifications == 0


def test_remembered_key_with_a_foreign_stored_hash_is_refused(
    hasher: KeyHasher, stored_hash: str
) -> None:
    hasher.verify(stored_hash, TOKEN)
    assert hasher.verify(foreign_hash(TOKEN, memory_cost=65536), TOKEN) is False
    assert hasher.argon2_verifications == 1


@pytest.mark.parametrize(
    "garbage",
    ["", "plaintext", POLICY_PREFIX, POLICY_PREFIX + "not$base64", "$argon2id$"],
)
def test_garbage_stored_hash_is_refused(hasher: KeyHasher, garbage: str) -> None:
    assert hasher.verify(garbage, TOKEN) is False


def test_non_ascii_stored_hash_is_refused(hasher: KeyHasher) -> None:
    assert hasher.verify(POLICY_PREFIX + "s\u00e4lt$h\u00e4sh", TOKEN) is False


def test_non_ascii_stored_hash_is_refused_for_a_remembered_key(
    hasher: KeyHasher, stored_hash: str
) -> None:
    assert hasher.verify(stored_hash, TOKEN)
    assert hasher.verify(stored_hash + "\u00e4", TOKEN) is False


@pytest.mark.parametrize("cap", [1, 3])
def test_concurrent_argon2_verifications_are_capped(cap: int) -> None:
    """The cap given is the cap kept (1 and 3: neither is this machine's core count, the
    default, so a cap ignored in favour of the default fails here)."""
    import threading
    import time as _time

    from keyledger.authn.hashing import KeyHasher as Hasher

    hasher = Hasher(max_concurrent=cap)
    stored = hasher.hash("k" * 70)
    running, peak, lock = [0], [0], threading.Lock()
    real = hasher._hasher

    class Slow:
        """Stands in for argon2's hasher, recording how many verify at once."""

        def verify(self, hash_: str, token: str) -> bool:
            return slow_verify(hash_, token)

    def slow_verify(hash_: str, token: str) -> bool:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        _time.sleep(0.05)
        with lock:
            running[0] -= 1
        return real.verify(hash_, token)

    hasher._hasher = Slow()  # type: ignore[assignment]
    threads = [threading.Thread(target=hasher.verify, args=(stored, f"{i:070d}")) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == cap


def test_a_new_hash_holds_a_16_byte_salt_and_a_32_byte_digest(hasher: KeyHasher) -> None:
    """The stored format docs/hashing.md states (PHC string, unpadded base64 fields)."""
    fields = hasher.hash(TOKEN).split("$")
    salt, digest = (base64.b64decode(f + "=" * (-len(f) % 4)) for f in fields[4:6])
    assert (len(salt), len(digest)) == (16, 32)
