"""The key format: typed, self-checking, refused early when malformed."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from keyledger.domain import tokens
from keyledger.domain.tokens import (
    BASE62,
    TOKEN_LENGTH,
    KeyKind,
    MalformedKey,
    ParsedKey,
    checksum,
    generate,
    parse,
)

PREFIX_LENGTH = len("klsk_")
SECRET_START = PREFIX_LENGTH + tokens.KEY_ID_LENGTH
SECRET_END = SECRET_START + tokens.SECRET_LENGTH


@pytest.fixture
def secret_key() -> ParsedKey:
    return generate(KeyKind.SECRET, 0x2A)


def secret_part(key: ParsedKey) -> str:
    return key.token[SECRET_START:SECRET_END]


def with_char(token: str, index: int, char: str) -> str:
    return token[:index] + char + token[index + 1 :]


# -- generate and parse ----------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KeyKind))
def test_generated_key_parses_back_to_itself(kind: KeyKind) -> None:
    key = generate(kind, 7)
    assert parse(key.token, kind) == key


@pytest.mark.parametrize(
    ("kind", "prefix"), [(KeyKind.ACCOUNT, "klak_"), (KeyKind.SECRET, "klsk_")]
)
def test_generated_key_starts_with_its_kind_prefix(kind: KeyKind, prefix: str) -> None:
    assert generate(kind, 0).token.startswith(prefix)


def test_generated_key_has_the_documented_layout(secret_key: ParsedKey) -> None:
    token = secret_key.token
    assert len(token) == TOKEN_LENGTH == 70
    assert token[PREFIX_LENGTH:SECRET_START] == secret_key.key_id
    assert set(token[SECRET_START:]) <= set(BASE62)
    assert token[-tokens.CHECKSUM_LENGTH :] == checksum(token[: -tokens.CHECKSUM_LENGTH])


def test_generated_secrets_differ() -> None:
    assert len({secret_part(generate(KeyKind.SECRET, 1)) for _ in range(50)}) == 50


@pytest.mark.parametrize("partition", [0, 1, 0x2A, 0xFF])
def test_key_id_carries_the_partition(partition: int) -> None:
    key = generate(KeyKind.ACCOUNT, partition)
    assert key.key_id.startswith(f"{partition:02x}")
    assert key.partition == partition


def test_parsed_key_reports_the_partition_of_its_key_id(secret_key: ParsedKey) -> None:
    assert parse(secret_key.token, KeyKind.SECRET).partition == 0x2A


@pytest.mark.parametrize("partition", [-1, 256, 1000])
def test_partition_outside_one_byte_is_refused(partition: int) -> None:
    with pytest.raises(ValueError, match="partition"):
        generate(KeyKind.SECRET, partition)


# -- malformed keys ---------------------------------------------------------------------


def test_account_key_given_as_secret_key_is_malformed() -> None:
    account_key = generate(KeyKind.ACCOUNT, 3)
    with pytest.raises(MalformedKey):
        parse(account_key.token, KeyKind.SECRET)


def test_secret_key_given_as_account_key_is_malformed(secret_key: ParsedKey) -> None:
    with pytest.raises(MalformedKey):
        parse(secret_key.token, KeyKind.ACCOUNT)


def test_prefix_swapped_with_a_recomputed_checksum_is_still_the_wrong_kind(
    secret_key: ParsedKey,
) -> None:
    body = "klak_" + secret_key.token[PREFIX_LENGTH : -tokens.CHECKSUM_LENGTH]
    forged = body + checksum(body)
    assert parse(forged, KeyKind.ACCOUNT).kind is KeyKind.ACCOUNT  # well formed as account key
    with pytest.raises(MalformedKey):
        parse(forged, KeyKind.SECRET)


def test_bad_checksum_is_malformed(secret_key: ParsedKey) -> None:
    token = secret_key.token
    wrong = "000000" if token[-6:] != "000000" else "000001"
    with pytest.raises(MalformedKey, match="checksum"):
        parse(token[:-6] + wrong, KeyKind.SECRET)


@pytest.mark.parametrize(
    "index",
    [0, 3, 4, PREFIX_LENGTH, SECRET_START - 1, SECRET_START, SECRET_END - 1, SECRET_END, 69],
)
def test_one_changed_character_is_malformed(secret_key: ParsedKey, index: int) -> None:
    original = secret_key.token[index]
    replacement = "1" if original != "1" else "2"
    with pytest.raises(MalformedKey):
        parse(with_char(secret_key.token, index, replacement), KeyKind.SECRET)


def test_uppercase_hex_in_the_key_id_is_malformed() -> None:
    key = generate(KeyKind.SECRET, 0xAB)
    token = key.token.replace(key.key_id, key.key_id.upper(), 1)
    assert token != key.token
    with pytest.raises(MalformedKey):
        parse(token, KeyKind.SECRET)


def test_secret_with_one_letter_in_the_other_case_is_malformed() -> None:
    key = generate(KeyKind.SECRET, 1)
    index = next(i for i in range(SECRET_START, SECRET_END) if key.token[i].isalpha())
    with pytest.raises(MalformedKey):
        parse(with_char(key.token, index, key.token[index].swapcase()), KeyKind.SECRET)


def test_truncated_key_is_malformed(secret_key: ParsedKey) -> None:
    with pytest.raises(MalformedKey):
        parse(secret_key.token[:-1], KeyKind.SECRET)


def test_extended_key_is_malformed(secret_key: ParsedKey) -> None:
    with pytest.raises(MalformedKey):
        parse(secret_key.token + "0", KeyKind.SECRET)


@pytest.mark.parametrize("char", ["\x00", "\r", "\n", "\t", " "])
def test_key_with_control_or_space_character_is_malformed(secret_key: ParsedKey, char: str) -> None:
    token = secret_key.token
    for candidate in (token + char, char + token, with_char(token, 69, char), token[:-1] + char):
        with pytest.raises(MalformedKey):
            parse(candidate, KeyKind.SECRET)


@pytest.mark.parametrize(
    "lookalike",
    [
        "\u0430",  # Cyrillic small a
        "\u0410",  # Cyrillic capital A
        "\u043e",  # Cyrillic small o
        "\uff10",  # fullwidth digit zero
        "\u0661",  # Arabic-Indic digit one
    ],
)
def test_non_ascii_lookalike_is_malformed(secret_key: ParsedKey, lookalike: str) -> None:
    for index in (0, PREFIX_LENGTH, SECRET_START, 69):
        with pytest.raises(MalformedKey):
            parse(with_char(secret_key.token, index, lookalike), KeyKind.SECRET)


def test_cyrillic_a_in_the_prefix_is_malformed() -> None:
    token = generate(KeyKind.ACCOUNT, 0).token
    with pytest.raises(MalformedKey):
        parse(token.replace("klak_", "kl\u0430k_", 1), KeyKind.ACCOUNT)


@pytest.mark.parametrize("value", ["", None])
def test_empty_or_missing_key_is_malformed(value: str | None) -> None:
    with pytest.raises(MalformedKey):
        parse(value, KeyKind.SECRET)


def test_key_of_the_right_length_in_the_wrong_layout_is_malformed() -> None:
    with pytest.raises(MalformedKey):
        parse("x" * TOKEN_LENGTH, KeyKind.SECRET)


def test_malformed_key_error_never_echoes_the_presented_value(secret_key: ParsedKey) -> None:
    tampered = with_char(
        secret_key.token, SECRET_START, "1" if secret_key.token[SECRET_START] != "1" else "2"
    )
    with pytest.raises(MalformedKey) as caught:
        parse(tampered, KeyKind.SECRET)
    assert secret_part(secret_key)[1:] not in str(caught.value)
    assert tampered not in repr(caught.value)


def test_malformed_key_is_a_value_error() -> None:
    assert issubclass(MalformedKey, ValueError)


# -- never leak the secret --------------------------------------------------------------


def test_repr_of_parsed_key_never_contains_the_secret(secret_key: ParsedKey) -> None:
    for text in (repr(secret_key), str(secret_key), f"{secret_key}", f"{secret_key!r}"):
        assert secret_part(secret_key) not in text
        assert secret_key.token not in text


def test_repr_of_parsed_key_names_kind_and_key_id(secret_key: ParsedKey) -> None:
    assert "klsk" in repr(secret_key)
    assert secret_key.key_id in repr(secret_key)


def test_repr_of_a_collection_of_keys_never_contains_the_secret(secret_key: ParsedKey) -> None:
    assert secret_part(secret_key) not in repr([secret_key, {"k": secret_key}])


# -- properties -------------------------------------------------------------------------


@given(st.text())
def test_parse_of_arbitrary_text_raises_only_malformed_key(value: str) -> None:
    for kind in KeyKind:
        with contextlib.suppress(MalformedKey):
            parse(value, kind)


@given(st.text(min_size=TOKEN_LENGTH, max_size=TOKEN_LENGTH))
def test_parse_of_arbitrary_text_of_key_length_raises_only_malformed_key(value: str) -> None:
    with contextlib.suppress(MalformedKey):
        parse(value, KeyKind.SECRET)


@given(
    st.sampled_from(["klsk_", "klak_"]),
    st.text(
        alphabet=st.characters(codec="utf-8"), min_size=TOKEN_LENGTH - 5, max_size=TOKEN_LENGTH - 5
    ),
)
def test_parse_of_prefixed_arbitrary_text_raises_only_malformed_key(prefix: str, rest: str) -> None:
    with contextlib.suppress(MalformedKey):
        parse(prefix + rest, KeyKind.SECRET)


@given(st.sampled_from(list(KeyKind)), st.integers(min_value=0, max_value=255))
def test_any_generated_key_parses_back(kind: KeyKind, partition: int) -> None:
    key = generate(kind, partition)
    parsed = parse(key.token, kind)
    assert parsed == key
    assert parsed.partition == partition


@given(
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=0, max_value=TOKEN_LENGTH - 1),
    st.characters(codec="utf-8"),
)
def test_any_single_character_substitution_is_malformed(
    partition: int, index: int, char: str
) -> None:
    token = generate(KeyKind.SECRET, partition).token
    assume(token[index] != char)
    with pytest.raises(MalformedKey):
        parse(with_char(token, index, char), KeyKind.SECRET)


@given(
    st.integers(min_value=0, max_value=255), st.integers(min_value=1, max_value=TOKEN_LENGTH - 1)
)
def test_any_truncation_is_malformed(partition: int, length: int) -> None:
    with pytest.raises(MalformedKey):
        parse(generate(KeyKind.SECRET, partition).token[:length], KeyKind.SECRET)
