"""Text users supply and auditors read: the refused characters and the quoting of values."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyledger.domain.text import (
    IGNORABLE,
    describe,
    first_unprintable,
    quoted,
    unprintable_reason,
)

#: Every character, surrogates included (a JSON body may carry a lone "\ud800").
ANY_TEXT = st.text(st.characters(exclude_categories=()))
#: Characters a terminal or a bidi-aware renderer acts on, rather than shows.
ACTIVE = (
    "\x00\x07\x08\x1b\x7f\x85\x9b"  # C0, DEL, C1 (NEL, CSI)
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # bidi
    "\u200b\u200d\u2060\ufeff\u00ad\U000e0001"  # zero-width, BOM, soft hyphen, tag
    "\u2028\u2029\u00a0\u3000"  # line/paragraph separators, invisible-width spaces
)


def refused(char: str) -> bool:
    """Also Default_Ignorable_Code_Point (second review, finding D: U+3164, U+FE0F...)."""
    return (
        unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
        or (unicodedata.category(char) == "Zs" and char != " ")
        or IGNORABLE.match(char) is not None
    )


@given(ANY_TEXT)
def test_a_quoted_value_reads_back_as_json(value: str) -> None:
    assert json.loads(quoted(value)) == value


@given(ANY_TEXT)
def test_a_quoted_value_holds_no_control_format_or_bidi_character(value: str) -> None:
    rendered = quoted(value)
    assert not any(refused(c) for c in rendered)
    assert first_unprintable(rendered) is None


@given(ANY_TEXT)
def test_a_quoted_value_is_one_string_literal_that_no_value_can_end(value: str) -> None:
    rendered = quoted(value)
    sentence = f"User {rendered} removed"
    decoded, end = json.JSONDecoder().raw_decode(sentence, len("User "))
    assert decoded == value and sentence[end:] == " removed"


@pytest.mark.parametrize("char", ACTIVE)
def test_each_active_character_is_escaped_as_json_would(char: str) -> None:
    assert quoted(f"a{char}b") == '"a' + json.dumps(char)[1:-1] + 'b"'


def test_quotes_and_backslashes_are_escaped_as_in_json() -> None:
    assert quoted('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'


def test_printable_letters_of_every_script_are_kept_as_they_are() -> None:
    assert quoted("Zoë Ünicode 山田 Ελένη") == '"Zoë Ünicode 山田 Ελένη"'


@pytest.mark.parametrize("char", ACTIVE)
def test_each_active_character_is_refused_with_its_code_point(char: str) -> None:
    reason = unprintable_reason(f"Bob{char}")
    assert reason is not None
    assert f"U+{ord(char):04X}" in reason and "position 4" in reason
    assert char not in reason


@given(ANY_TEXT)
def test_text_is_refused_exactly_when_it_holds_a_refused_character(value: str) -> None:
    assert (unprintable_reason(value) is None) == (not any(refused(c) for c in value))


def test_plain_text_is_accepted() -> None:
    assert unprintable_reason("Bob' <x@y> added with role Owner. User 'Eve") is None


def test_a_character_is_described_by_its_unicode_name() -> None:
    assert describe("\u202e") == "U+202E RIGHT-TO-LEFT OVERRIDE"
    assert describe("\x1b") == "U+001B Cc"  # controls have no name, only a category
