"""No name, email or description may hold a keyledger key (a key pasted into the wrong
field would be kept for ever in the event log, and shown in every line that quotes it)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keyledger.domain.account import (
    check_account_name,
    check_email,
    check_key_name,
    check_user_name,
)
from keyledger.domain.errors import InvalidInput
from keyledger.domain.lifecycle import check_description
from keyledger.domain.tokens import KeyKind, generate

KEY = generate(KeyKind.SECRET, 3).token
ACCOUNT_KEY = generate(KeyKind.ACCOUNT, 3).token

CHECKS: dict[str, Callable[[str], str]] = {
    "user name": check_user_name,
    "account name": check_account_name,
    "description": check_description,
}


@pytest.mark.parametrize("check", CHECKS, ids=list(CHECKS))
@pytest.mark.parametrize(
    "value",
    [
        KEY,
        ACCOUNT_KEY,
        f"ci key {KEY}",
        f"CI KEY {KEY.upper()}",
        f"key: {KEY.replace('_', '-', 1)}",
        f"key: {KEY.replace('_', '%5F', 1)}",
        KEY[:30],  # the prefix, the key id and a few characters of the secret
        "ci key " + "".join(chr(ord(c) + 0xFEE0) for c in KEY),  # fullwidth
    ],
)
def test_a_text_field_holding_a_key_is_refused(check: str, value: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        CHECKS[check](value)
    assert KEY[21:64] not in str(refused.value.fields)


@pytest.mark.parametrize("name", [KEY[:50], "klsk_" + "a" * 20, "KLAK-" + "b" * 30])
def test_a_key_name_shaped_like_a_key_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_key_name(name)


def test_an_email_holding_a_key_is_refused() -> None:
    with pytest.raises(InvalidInput):
        check_email(f"{KEY[:40]}@example.com")


@pytest.mark.parametrize(
    "value",
    [
        "klsk-is-a-fine-name",
        "the klak_ prefix names account keys",
        "deployed from commit 3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a",
        "Kl Sk",
    ],
)
def test_text_that_only_mentions_a_key_is_kept(value: str) -> None:
    assert check_description(value) == value


def test_a_key_name_that_only_starts_like_a_key_is_kept() -> None:
    assert check_key_name("klsk-deploy-key") == "klsk-deploy-key"
