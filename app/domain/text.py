"""Text that users supply and auditors read: which characters it may hold, how it is quoted.

Names, e-mails and subnets end up in the system log, its CSV export and the event
history, which people read in terminals and spreadsheets. A control character there
is an instruction to the terminal (``ESC [31m`` recolours it, ``BEL`` rings it), and a
bidirectional override or an invisible format character makes text read differently
from what it holds. So text fields accept only what ``str.isprintable`` accepts:
everything but the Unicode categories Cc (controls: C0, DEL, C1), Cf (format:
bidirectional marks, embeddings, overrides and isolates, zero-width characters,
soft hyphen, tag characters...), Cs (surrogates), Co (private use), Cn (unassigned),
Zl and Zp (line and paragraph separators) and Zs other than the ASCII space (no-break
and other invisible-width spaces), nor any Default_Ignorable_Code_Point character
(drawn as nothing although ``isprintable`` accepts some: HANGUL FILLER U+3164,
variation selectors U+FE00-FE0F, COMBINING GRAPHEME JOINER U+034F, Mongolian free
variation selectors...; the property comes from the ``regex`` package's Unicode data).
One rule for every field (docs/audit.md). Combining accents are not ignorable and
stay accepted.

Values a user supplied appear in system-log sentences through ``quoted``: a JSON
string literal, so a value can never end the sentence it is quoted in.
"""

from __future__ import annotations

import json
import unicodedata

import regex

#: ``json.dumps(value, ensure_ascii=False)`` for a string, without a new encoder per call.
_json_string = json.JSONEncoder(ensure_ascii=False).encode


#: Characters Unicode says to draw as nothing (DerivedCoreProperties.txt).
IGNORABLE = regex.compile(r"\p{Default_Ignorable_Code_Point}")


def first_unprintable(text: str) -> tuple[int, str] | None:
    """Position and character of the first character a text field may not hold."""
    ignorable = IGNORABLE.search(text)
    for position, char in enumerate(text):
        if not char.isprintable() or (ignorable is not None and position == ignorable.start()):
            return position, char
    return None


def describe(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: names a character without printing it."""
    name = unicodedata.name(char, "") or unicodedata.category(char)
    return f"U+{ord(char):04X} {name}"


#: What ``first_unprintable`` finds, and spaces (``printable`` keeps the plain one).
_UNPRINTABLE = regex.compile(r"[\p{C}\p{Z}\p{Default_Ignorable_Code_Point}]")


def _percent_encoded(match: regex.Match[str]) -> str:
    char: str = match[0]
    if char == " ":
        return char
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def printable(text: str) -> str:
    """``text`` with every character a text field may not hold (``first_unprintable``)
    percent-encoded as UTF-8, as a URL writes it: for text that must be kept rather than
    refused (where a leak was found: refusing the report would leave the key live)."""
    encoded: str = _UNPRINTABLE.sub(_percent_encoded, text)
    return encoded


def unprintable_reason(text: str) -> str | None:
    """Why ``text`` is refused as a text field, or None when every character is allowed."""
    found = first_unprintable(text)
    if found is None:
        return None
    position, char = found
    return (
        "must not contain control, invisible formatting or bidirectional characters "
        f"(found {describe(char)} at position {position + 1})"
    )


def not_nfkc_reason(text: str) -> str | None:
    """Why ``text`` is refused where compatibility forms must not pass for plain ones
    (e-mails: ``own\\uff21@example.com`` beside ``ownA@example.com``), or None when ``text``
    is already in Unicode NFKC form."""
    normal = unicodedata.normalize("NFKC", text)
    if normal == text:
        return None
    position, char = next((i, c) for i, c in enumerate(text) if c != normal[i : i + 1])
    return (
        "must be in Unicode NFKC form: no compatibility characters such as fullwidth "
        f"letters (found {describe(char)} at position {position + 1})"
    )


def quoted(value: str) -> str:
    """``value`` as a JSON string literal: between double quotes, ``"`` and ``\\`` escaped.

    Every character that is not printable or is default-ignorable (see the module
    docstring) is escaped as
    JSON escapes it (``\\u001b``, ``\\n``, ``\\u202e``, surrogate pairs above U+FFFF), so
    the result holds no control or format character even for a value recorded before
    such characters were refused; ``json.loads`` gives back the value.
    """
    literal = _json_string(value)
    if literal.isascii() and literal.isprintable():
        return literal  # no default-ignorable character is ASCII (the first is U+00AD)
    if literal.isprintable() and IGNORABLE.search(literal) is None:
        return literal
    return "".join(
        c if c.isprintable() and not IGNORABLE.match(c) else json.dumps(c)[1:-1] for c in literal
    )
