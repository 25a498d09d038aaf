"""The key format: a typed, self-checking bearer token.

``klak_`` (account key) or ``klsk_`` (secret key), then a 16-hex-digit public
key id, a 43-character base62 secret (about 256 bits from ``secrets``) and a
6-character base62 CRC32 of everything before it. The checksum lets a malformed
or mistyped key be rejected without a Redis lookup or an argon2 computation,
and the fixed prefix makes leaked keys easy for secret scanners to find.

The key id's first two hex digits name the account's log partition, so a
lookup goes straight to the right hash slot.
"""

from __future__ import annotations

import contextlib
import html
import re
import secrets
import unicodedata
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote

import regex

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SECRET_LENGTH = 43
CHECKSUM_LENGTH = 6
KEY_ID_LENGTH = 16
TOKEN_LENGTH = 5 + KEY_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH


class KeyKind(StrEnum):
    ACCOUNT = "klak"
    SECRET = "klsk"  # noqa: S105 (a prefix, not a password)


_TOKEN = re.compile(
    rf"(klak|klsk)_([0-9a-f]{{{KEY_ID_LENGTH}}})"
    rf"([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)


#: A key as someone might paste or mangle it: the prefix in any case, then up to three
#: characters that are not letters or digits (``_``, ``-``, ``: ``, a space...) or an
#: encoded ``_`` (``%5F``, once or more), then at least 20 letters and digits.
PASTED_KEY = r"(?i:kl(?:ak|sk))(?:[^0-9A-Za-z]{0,3}|%(?:25)*5[fF])[0-9A-Za-z]{20,}"
#: The longest run of letters and digits in any id keyledger writes (key, account and user
#: ids are 16 hex digits, request ids 32, as a UUID's hex). A secret is 43: a longer run
#: could be one, or most of one; what 32 characters leave unknown (11, 65 bits) is too
#: much to search for, even with the key's checksum.
LONGEST_ID = 32
#: A key's letters and digits after its prefix: the key id, the secret and the checksum.
KEY_BODY_LENGTH = KEY_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH
#: What logs redact: a key, or any run of letters and digits that could be a secret
#: however it was mangled (a log line rather loses a long word than keeps a secret).
KEY_SHAPE = re.compile(rf"{PASTED_KEY}|[0-9A-Za-z]{{{LONGEST_ID + 1},}}")
_PASTED_KEY = re.compile(PASTED_KEY)
_LONG_RUN = re.compile(rf"[0-9A-Za-z]{{{LONGEST_ID + 1},}}")
_HEX = re.compile(r"[0-9a-f]+|[0-9A-F]+")
_URL = re.compile(r"(?i:https?)://[^\s\"'<>]+")
REDACTED = "[redacted-key]"
#: The most of a text ``redact`` reads: the rest is cut, marked "...", and never shown
#: (decoding a 64 KB path of encoded characters over and over cost 0.1 s of CPU). A key
#: cut there leaves a piece: redacted when long enough to matter, as any piece is. Twice
#: the longest value a log line shows (``MAX_PATH``).
LONGEST_READ = 2048
#: Rounds of decoding ``readings`` tries at most (each undoes one layer: percent-encoding,
#: HTML character references, UTF-8 read as Latin-1, compatibility forms and invisible
#: characters); a round that changes nothing ends it. Enough for a run of 33 letters and
#: digits that fits in ``LONGEST_READ`` however deeply it was percent-encoded (a layer
#: adds 2 characters per character: 33 x (2 x 31 + 1) > 2,048); 8 rounds let a secret
#: encoded 10 times into a log line (about 820 characters, shown whole).
DECODINGS = 32
#: Characters a reading drops, which nobody sees between a key's letters: combining
#: marks, format characters (zero-width spaces and joiners, soft hyphens, direction
#: marks), every default-ignorable code point (variation selectors, Hangul fillers U+115F,
#: U+1160, U+3164, U+FFA0), and the Braille blank U+2800, drawn as an empty cell.
_INVISIBLE = regex.compile(r"[\p{Mn}\p{Me}\p{Cf}\p{Default_Ignorable_Code_Point}\u2800]")


def _decoded(text: str) -> str:
    """``text`` with one layer of every encoding undone. UTF-8 read from Latin-1 takes
    what decodes (one stray byte, ``%FF`` in a path, must not hide the rest)."""
    if "%" in text:
        text = unquote(text)
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():
        with contextlib.suppress(UnicodeError):
            text = text.encode("latin-1").decode("utf-8", "replace")
        text = unicodedata.normalize(
            "NFKC", _INVISIBLE.sub("", unicodedata.normalize("NFKD", text))
        )
    return text


def readings(text: str) -> list[str]:
    """The ways ``text`` could spell a key: as is, then with one more layer decoded each
    time (``_decoded``: percent-encoding, HTML character references, UTF-8 read from its
    Latin-1 characters as a WSGI server hands a path over, fullwidth and other
    compatibility forms, combining marks and zero-width characters dropped), until
    nothing changes or ``DECODINGS`` rounds. The last is the most decoded."""
    found = [text]
    for _ in range(DECODINGS):
        decoded = _decoded(found[-1])
        if decoded == found[-1]:
            break
        found.append(decoded)
    return found


def _secret_like(run: str) -> bool:
    """A run of letters and digits with all three kinds, as a base62 secret has (a 33-
    character piece of one lacks a digit, an upper or a lower case letter once in 300)."""
    return not run.isalpha() and run.lower() != run and run.upper() != run


#: The length of a Google document's id (Docs, Sheets, Slides, Forms: 44 random letters,
#: digits, ``-`` and ``_``), the one long random run common in URLs people paste.
DOCUMENT_ID_LENGTH = 44


def _held_run(run: str, in_url: bool) -> bool:
    """Whether a run of more than ``LONGEST_ID`` letters and digits could be (most of) a
    secret. Mixed as a secret is (``_secret_like``); or as long as a secret (43), not a
    hex digest, and with a digit or both cases (``_both_cases``): a whole key case-folded
    by a tool or with its prefix cut still names its secret (its checksum picks the case
    back out of a few dozen candidates), and one secret in 2,000 has no digit. Inside an
    http(s) URL, where ids of 33-42 random characters are common (Google Drive's are 33),
    only the second rule, and a run of a Google document id's length (44) passes: a
    secret is 43, a key's body 65, the key id and secret together 59."""
    if len(run) <= LONGEST_ID or (in_url and len(run) == DOCUMENT_ID_LENGTH):
        return False
    if not in_url and _secret_like(run):
        return True
    return (
        len(run) >= SECRET_LENGTH
        and _HEX.fullmatch(run) is None
        and (not run.isalpha() or _both_cases(run))
    )


def _both_cases(run: str) -> bool:
    """At least three letters of each case (a capitalised word has one upper case letter;
    a secret of 43 has about 18 of each)."""
    upper = sum(map(str.isupper, run))
    return upper >= 3 and sum(map(str.islower, run)) >= 3


def _held_spans(spelled: str) -> list[tuple[int, int]]:
    """Where ``spelled`` holds a key or what could be its secret (``_held_run``)."""
    spans = [m.span() for m in _PASTED_KEY.finditer(spelled)]
    if len(spelled) > LONGEST_ID:
        urls = [m.span() for m in _URL.finditer(spelled)] if "://" in spelled else []
        for run in _LONG_RUN.finditer(spelled):
            start, end = run.span()
            in_url = any(a <= start and end <= b for a, b in urls)
            if _held_run(run.group(), in_url):
                spans.append((start, end))
    return spans


def key_shape_spans(spelled: str) -> list[tuple[int, int]]:
    """Where ``spelled`` has anything shaped like a key (``KEY_SHAPE``)."""
    return [m.span() for m in KEY_SHAPE.finditer(spelled)]


Spans = Callable[[str], list[tuple[int, int]]]


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span (overlapping ones merged) replaced by ``REDACTED``."""
    kept, end = [], 0
    for start, stop in sorted(spans):
        if stop <= end:
            continue
        kept.append(text[end : max(start, end)])
        kept.append(REDACTED)
        end = stop
    kept.append(text[end:])
    return "".join(kept)


def redact(text: str, spans_of: Spans) -> str:
    """``text`` with what ``spans_of`` finds in any of its ``readings`` redacted. When no
    reading shows anything, ``text`` as it came; else its most decoded reading, redacted,
    and with anything found in a less decoded reading redacted too, wherever it is left.
    Only the first ``LONGEST_READ`` characters are read, and kept."""
    if len(text) > LONGEST_READ:
        text = text[:LONGEST_READ] + "..."
    views = readings(text)
    found = [(view, spans_of(view)) for view in views]
    if not any(spans for _, spans in found):
        return text
    final, spans = found[-1]
    result = _cut(final, spans)
    for view, spans in found[:-1]:
        for start, stop in spans:
            result = result.replace(view[start:stop], REDACTED)
    return result


def holds_key(text: str) -> bool:
    """True when ``text``, however spelled (``readings``), holds a key (``PASTED_KEY``) or
    what could be its secret (``_held_run``). Long words and names, hex digests and the
    ids in a URL pass: this decides what input is refused, where a false alarm costs a
    user (``KEY_SHAPE`` decides what logs hide)."""
    return any(_held_spans(spelled) for spelled in readings(text))


def redact_held(text: str) -> str:
    """``text`` with what ``holds_key`` refuses redacted (``redact``): for answers that
    quote a client, and for a leak report's URL (a commit hash in it is kept)."""
    return redact(text, _held_spans)


def could_hold_key(text: str) -> bool:
    """True when any reading of ``text`` has anything ``KEY_SHAPE`` finds but a hex
    digest: for values that are kept whole or dropped whole (request ids, redirects)."""
    return any(
        _HEX.fullmatch(shape.group()) is None
        for spelled in readings(text)
        for shape in KEY_SHAPE.finditer(spelled)
    )


class MalformedKey(ValueError):
    """The presented value is not a well-formed key of the expected kind."""


@dataclass(frozen=True, slots=True)
class ParsedKey:
    kind: KeyKind
    key_id: str
    token: str

    @property
    def partition(self) -> int:
        return int(self.key_id[:2], 16)

    def __repr__(self) -> str:  # never show the secret, even in a traceback
        return f"ParsedKey(kind={self.kind.value!r}, key_id={self.key_id!r})"


_PAIRS = [a + b for a in BASE62 for b in BASE62]  # two base62 digits per lookup


def checksum(body: str) -> str:
    """CRC32 of ``body`` as 6 base62 digits (62**6 > 2**32); on every request's path."""
    number = zlib.crc32(body.encode("ascii"))
    high, rest = divmod(number, 3844 * 3844)
    middle, low = divmod(rest, 3844)
    return _PAIRS[high] + _PAIRS[middle] + _PAIRS[low]


def new_key_id(partition: int) -> str:
    if not 0 <= partition <= 0xFF:
        raise ValueError("partition must fit in one byte")
    return f"{partition:02x}{secrets.token_hex((KEY_ID_LENGTH - 2) // 2)}"


def generate(kind: KeyKind, partition: int, key_id: str | None = None) -> ParsedKey:
    """A new key; with ``key_id``, a new secret for that key id (a rotation)."""
    key_id = key_id or new_key_id(partition)
    secret = "".join(secrets.choice(BASE62) for _ in range(SECRET_LENGTH))
    body = f"{kind.value}_{key_id}{secret}"
    return ParsedKey(kind=kind, key_id=key_id, token=body + checksum(body))


_PREFIXES = {kind: f"{kind.value}_" for kind in KeyKind}


def parse(value: str | None, expected: KeyKind) -> ParsedKey:
    """Parse a presented key; raise ``MalformedKey`` without touching any store.

    On the hot path of every request: string and C-level checks only.
    """
    if not value or len(value) != TOKEN_LENGTH:
        raise MalformedKey("wrong length")
    if _TOKEN.fullmatch(value) is None:
        raise MalformedKey("wrong alphabet or layout")
    if not value.startswith(_PREFIXES[expected]):
        raise MalformedKey("wrong key type prefix")
    body = value[:-CHECKSUM_LENGTH]
    if not secrets.compare_digest(value[-CHECKSUM_LENGTH:], checksum(body)):
        raise MalformedKey("bad checksum")
    return ParsedKey(expected, value[5 : 5 + KEY_ID_LENGTH], value)
