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
import re
import secrets
import unicodedata
import zlib
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote

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


#: A key as someone might paste or mangle it: the prefix in any case, then ``_``, ``-`` or
#: an encoded ``_`` (``%5F``, once or more), then at least 20 letters and digits.
PASTED_KEY = r"(?i:kl(?:ak|sk))(?:[_-]|%(?:25)*5[fF])[0-9A-Za-z]{20,}"
#: The longest run of letters and digits in any id keyledger writes (key, account and user
#: ids are 16 hex digits, request ids 32, as a UUID's hex). A secret is 43: a longer run
#: could be one, or most of one; what 32 characters leave unknown (11, 65 bits) is too
#: much to search for, even with the key's checksum.
LONGEST_ID = 32
#: What logs redact: a key, or any run of letters and digits that could be a secret
#: however it was mangled (a log line rather loses a long word than keeps a secret).
KEY_SHAPE = re.compile(rf"{PASTED_KEY}|[0-9A-Za-z]{{{LONGEST_ID + 1},}}")
_PASTED_KEY = re.compile(PASTED_KEY)
_LONG_RUN = re.compile(rf"[0-9A-Za-z]{{{LONGEST_ID + 1},}}")
REDACTED = "[redacted-key]"


def readings(text: str) -> list[str]:
    """The ways ``text`` could spell a key: as is, percent-decoded (up to three times),
    as UTF-8 read from its Latin-1 characters (how a WSGI server hands a path over), and
    each of those in NFKC form (a fullwidth key reads back as the key)."""
    found = [text]
    for _ in range(3):
        if "%" not in found[-1]:
            break
        found.append(unquote(found[-1]))
    for spelled in list(found):
        if not spelled.isascii():
            with contextlib.suppress(UnicodeError):
                found.append(spelled.encode("latin-1").decode("utf-8"))
    return [t if t.isascii() else unicodedata.normalize("NFKC", t) for t in found]


def _secret_like(run: str) -> bool:
    """A run of letters and digits with all three kinds, as a base62 secret has (a 33-
    character piece of one lacks a digit, an upper or a lower case letter once in 300)."""
    return (
        any(c.isdigit() for c in run)
        and any(c.isupper() for c in run)
        and any(c.islower() for c in run)
    )


def holds_key(text: str) -> bool:
    """True when ``text``, however spelled (``readings``), holds a key (``PASTED_KEY``) or
    a run of more than ``LONGEST_ID`` letters and digits mixing digits and both cases, as
    a secret's do. Long words, hex digests and document ids pass: this decides what input
    is refused, where a false alarm costs a user (``KEY_SHAPE`` decides what logs hide)."""
    for spelled in readings(text):
        if _PASTED_KEY.search(spelled):
            return True
        if any(_secret_like(run.group()) for run in _LONG_RUN.finditer(spelled)):
            return True
    return False


def without_pasted_keys(text: str) -> str:
    """``text`` with every prefixed key (``PASTED_KEY``, however spelled: ``readings``)
    redacted, in the spelling that showed it; long runs kept (a URL's commit hash is 40
    hex digits)."""
    for spelled in readings(text):
        if _PASTED_KEY.search(spelled):
            return _PASTED_KEY.sub(REDACTED, spelled)
    return text


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
