"""No name, email or description may hold a keyledger key, or a run of letters and digits
long enough to be most of a secret and mixed like one (a key pasted into the wrong field
would be kept for ever in the event log, and shown in every line that quotes it); long
words, hex digests and document ids are kept; a leak report's URL is never refused for
it (its keys are redacted)."""

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
from keyledger.domain.lifecycle import check_description, check_url
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
        f"note {KEY[21:64]}",  # the secret alone
        f"q{KEY[24:64]}",
        f"{KEY[21:54]} and more",  # 33 of its characters
        "see %6B%6C%73%6B%5F" + KEY[5:],  # percent-encoded
        "see %256B%256C%2573%256B%255F" + KEY[5:],  # twice
    ],
)
def test_a_text_field_holding_a_key_is_refused(check: str, value: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        CHECKS[check](value)
    assert KEY[21:64] not in str(refused.value.fields)


@pytest.mark.parametrize(
    "name", [KEY[:50], "klsk_" + "a" * 20, "KLAK-" + "b" * 30, KEY[21:64], f"k-{KEY[21:64]}"]
)
def test_a_key_name_shaped_like_a_key_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_key_name(name)


@pytest.mark.parametrize(
    "email", [f"{KEY[:40]}@example.com", f"{KEY[21:64]}@example.com", f"a@{KEY[21:64]}.example"]
)
def test_an_email_holding_a_key_is_refused(email: str) -> None:
    with pytest.raises(InvalidInput):
        check_email(email)


@pytest.mark.parametrize(
    "value",
    [
        "klsk-is-a-fine-name",
        "the klak_ prefix names account keys",
        "deployed from commit 3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "Wolfeschlegelsteinhausenbergerdorff",
        "https://docs.google.com/document/d/1aBcDeFgHiJkLmNoPqRsTuVwXyZ_0123456789-abcd/edit",
        "0f8fad5bd9cb469fa16570867728950e (a request id: 32 hex digits)",
        "Kl Sk",
    ],
)
def test_text_that_only_mentions_a_key_is_kept(value: str) -> None:
    assert check_description(value) == value


@pytest.mark.parametrize(
    "name", ["klsk-deploy-key", "ProductionBillingServiceReadOnlyKey", "Z" * 50]
)
def test_key_names_that_only_look_long_or_start_like_a_key_are_kept(name: str) -> None:
    assert check_key_name(name) == name


def test_a_leak_reports_url_keeps_its_commit_hash_and_loses_any_key() -> None:
    url = "https://github.com/o/r/blob/3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a/.env"
    assert check_url(url) == url
    assert check_url(f"{url}#{KEY}") == f"{url}#[redacted-key]"
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in KEY)
    assert KEY[21:64] not in check_url(f"{url}#{fullwidth}")
    assert KEY[21:64] not in check_url(f"{url}#{KEY.replace('_', '%2D', 1)}".replace("%2D", "-"))
