"""Invisible characters that ``str.isprintable`` lets through are refused too (second
review, finding D), and e-mails must be in NFKC form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyledger.domain.account import check_email, check_user_name
from keyledger.domain.errors import InvalidInput
from keyledger.domain.text import quoted, unprintable_reason

#: Default_Ignorable_Code_Point ranges as DerivedCoreProperties.txt lists them (the
#: review's list, checked against the Unicode data: U+061C and U+180E are in it too).
RANGES = [
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
]
IGNORABLE = [chr(c) for low, high in RANGES for c in range(low, high + 1)]


@pytest.mark.parametrize("name", ["Bob\u3164X", "Bob\ufe0fX", "Bob\u034fX", "Bob\u180bX"])
def test_the_reviews_names_are_refused_naming_the_field(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_user_name(name)
    assert list(caught.value.fields) == ["name"]
    assert f"U+{ord(name[3]):04X}" in caught.value.fields["name"][0]


@given(st.sampled_from(IGNORABLE))
def test_every_default_ignorable_character_is_refused(char: str) -> None:
    assert unprintable_reason(f"ab{char}cd") is not None


@given(st.sampled_from(IGNORABLE))
def test_a_quoted_value_escapes_every_default_ignorable_character(char: str) -> None:
    rendered = quoted(f"a{char}b")
    assert char not in rendered and rendered.isascii()


@pytest.mark.parametrize("name", ["José", "Jose\u0301", "Zoë", "Nguyễn", "Ελένη", "山田"])
def test_names_with_accents_combining_or_not_are_accepted(name: str) -> None:
    assert check_user_name(name) == name


def test_an_email_in_fullwidth_letters_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_email("own\uff21@example.com")
    assert list(caught.value.fields) == ["email"]
    assert "NFKC" in caught.value.fields["email"][0]
    assert "U+FF21" in caught.value.fields["email"][0]


@pytest.mark.parametrize("email", ["ownA@example.com", "zoë@example.com", "山田@example.jp"])
def test_an_email_in_nfkc_form_is_accepted(email: str) -> None:
    assert check_email(email) == email


@pytest.mark.parametrize("email", ["\ufb01le@example.com", "a\u2126@x.io", "e\u0301@x.io"])
def test_other_compatibility_and_decomposed_forms_are_refused(email: str) -> None:
    with pytest.raises(InvalidInput):
        check_email(email)
