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
and other invisible-width spaces). One rule, from the standard library's Unicode
database, for every field (docs/audit.md).

Values a user supplied appear in system-log sentences through ``quoted``: a JSON
string literal, so a value can never end the sentence it is quoted in.
"""

from __future__ import annotations

import json
import unicodedata

#: ``json.dumps(value, ensure_ascii=False)`` for a string, without a new encoder per call.
_json_string = json.JSONEncoder(ensure_ascii=False).encode


def first_unprintable(text: str) -> tuple[int, str] | None:
    """Position and character of the first character a text field may not hold."""
    for position, char in enumerate(text):
        if not char.isprintable():
            return position, char
    return None


def describe(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: names a character without printing it."""
    name = unicodedata.name(char, "") or unicodedata.category(char)
    return f"U+{ord(char):04X} {name}"


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


def quoted(value: str) -> str:
    """``value`` as a JSON string literal: between double quotes, ``"`` and ``\\`` escaped.

    Every character that is not printable (see the module docstring) is escaped as
    JSON escapes it (``\\u001b``, ``\\n``, ``\\u202e``, surrogate pairs above U+FFFF), so
    the result holds no control or format character even for a value recorded before
    such characters were refused; ``json.loads`` gives back the value.
    """
    literal = _json_string(value)
    if literal.isprintable():
        return literal
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in literal)
