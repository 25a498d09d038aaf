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

import html
import re
import secrets
import unicodedata
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

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
#: What logs redact: a key, or any run of letters and digits that could be a secret
#: however it was mangled (a log line rather loses a long word than keeps a secret).
KEY_SHAPE = re.compile(rf"{PASTED_KEY}|[0-9A-Za-z]{{{LONGEST_ID + 1},}}")
_PASTED_KEY = re.compile(PASTED_KEY)
_LONG_RUN = re.compile(rf"[0-9A-Za-z]{{{LONGEST_ID + 1},}}")
_HEX = re.compile(r"[0-9a-f]+|[0-9A-F]+")
#: An http(s) URL: its host (after any user information, before any port) and its path.
_URL = re.compile(
    r"(?i:https?)://(?:[^/\s\"'<>?#@]*@)?([^/\s\"'<>?#:]+)(?::\d*)?([/?#][^\s\"'<>]*)?"
)
#: Hosts (and their subdomains) of services whose links people paste into descriptions:
#: the ids after the host are long random runs that no rule could tell from a secret
#: (Google's are 33, 34, 44, 56 or 72 characters), and a key is no more likely pasted
#: into one than anywhere. There a prefixed key is still refused, and so is a run as
#: long as a secret, or a secret with its checksum or key id (``KEY_RUN_LENGTHS``).
DOCUMENT_HOSTS = (
    "google.com",
    "googleusercontent.com",
    "youtube.com",
    "youtu.be",
    "forms.gle",
    "github.com",
    "sharepoint.com",
    "onedrive.live.com",
    "1drv.ms",
    "icloud.com",
    "dropbox.com",
    "figma.com",
    "notion.so",
)
#: Runs a key's parts make when a separator cuts it: the secret, with its checksum, with
#: its key id, and the whole body.
KEY_RUN_LENGTHS = frozenset(
    {
        SECRET_LENGTH,
        SECRET_LENGTH + CHECKSUM_LENGTH,
        KEY_ID_LENGTH + SECRET_LENGTH,
        KEY_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH,
    }
)
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
#: Characters a reading drops: what nobody sees between a key's letters, or what could
#: stand between them without hiding them. Outside ASCII: every mark (combining or
#: spacing), format character (zero-width spaces and joiners, soft hyphens, direction
#: marks), default-ignorable code point (variation selectors, Hangul fillers), unassigned
#: or private-use code point, and symbol other than math and currency signs (the Braille
#: blank U+2800 and the musical null notehead U+1D159 are drawn as nothing; emoji and
#: dingbats too, for a reading). Letters, digits, punctuation and spaces stay: they part
#: runs as they would to a reader.
_INVISIBLE = regex.compile(
    r"[[^\x00-\x7f]&&[\p{M}\p{Cf}\p{Cn}\p{Co}\p{So}\p{Sk}\p{Default_Ignorable_Code_Point}]]",
    regex.V1,
)
#: Runs of characters a WSGI server may have handed over as Latin-1 for UTF-8 bytes.
_LATIN1_RUN = re.compile(r"[\x80-\xff]+")
#: ``%uXXXX`` (IIS, JavaScript's ``escape``), ``\uXXXX`` and ``\xNN`` spellings.
_ESCAPED = re.compile(r"%u([0-9A-Fa-f]{4})|\\u([0-9A-Fa-f]{4})|\\x([0-9A-Fa-f]{2})")
#: Runs of percent-encoded bytes, decoded together as UTF-8 (``urllib.parse.unquote``
#: splits a text at every non-ASCII character: on 2,000 of them, 1.3 ms a call).
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


def _unquoted(run: re.Match[str]) -> str:
    return bytes.fromhex(run[0].replace("%", "")).decode("utf-8", "replace")


def _utf8_from_latin1(run: re.Match[str]) -> str:
    return run[0].encode("latin-1").decode("utf-8", "replace")


def _unescaped(escape: re.Match[str]) -> str:
    return chr(int(escape[1] or escape[2] or escape[3], 16))


def _decoded(text: str, clean: int | None = None) -> tuple[str, int | None]:
    """``text`` with one layer of every encoding undone, at most ``LONGEST_READ``
    characters of it (a compatibility form can be 18 characters long: U+FDFA), and what
    its non-ASCII characters weigh in UTF-8 when they are clean (normal, nothing dropped):
    given that as ``clean``, a round that decoded only ASCII skips the Unicode work,
    which costs most. UTF-8 is read from each run of Latin-1 characters, as far as it
    decodes: one stray byte (``%FF`` in a path), or one character beyond Latin-1, must
    not hide the rest."""
    if "%u" in text or "%U" in text or "\\" in text:
        text = _ESCAPED.sub(_unescaped, text)
    if "%" in text:
        text = _PERCENT_RUN.sub(_unquoted, text)
    if "&" in text:
        text = html.unescape(text)
    if text.isascii():
        return text[:LONGEST_READ], None
    if _weight(text) != clean:
        text = _LATIN1_RUN.sub(_utf8_from_latin1, text)
        if not unicodedata.is_normalized("NFKC", text) or _INVISIBLE.search(text):
            text = unicodedata.normalize("NFKD", text)[: 2 * LONGEST_READ]
            text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))
        text = text[:LONGEST_READ]
        clean = _weight(text)
    return text[:LONGEST_READ], clean


def _weight(text: str) -> int:
    """The UTF-8 bytes ``text``'s non-ASCII characters take beyond one each."""
    return len(text.encode("utf-8", "surrogatepass")) - len(text)


def readings(text: str) -> list[str]:
    """The ways ``text`` could spell a key: as is, then with one more layer decoded each
    time (``_decoded``: ``%uXXXX`` and backslash escapes, percent-encoding, HTML character
    references, UTF-8 read from Latin-1 characters as a WSGI server hands a path over,
    fullwidth and other compatibility forms, characters drawn as nothing dropped), until
    nothing changes or ``DECODINGS`` rounds. The last is the most decoded. Each is at
    most ``LONGEST_READ`` characters long, beyond the text as it came."""
    found, clean = [text], None
    for _ in range(DECODINGS):
        decoded, clean = _decoded(found[-1], clean)
        if decoded == found[-1]:
            break
        found.append(decoded)
    return found


def _secret_like(run: str) -> bool:
    """A run of letters and digits with all three kinds, as a base62 secret has (a 33-
    character piece of one lacks a digit, an upper or a lower case letter once in 300)."""
    return not run.isalpha() and run.lower() != run and run.upper() != run


def _held_run(run: str, in_document_url: bool) -> bool:
    """Whether a run of more than ``LONGEST_ID`` letters and digits could be (most of) a
    secret: mixed as a secret is (``_secret_like``); or as long as a secret (43), not a
    hex digest, and with a digit or both cases (``_both_cases``): a whole key case-folded
    by a tool or with its prefix cut still names its secret (its checksum picks the case
    back out of a few dozen candidates), and one secret in 2,000 has no digit. In a
    document service's link (``DOCUMENT_HOSTS``), whose ids are long random runs, only
    runs of a key's parts' lengths (``KEY_RUN_LENGTHS``)."""
    if len(run) <= LONGEST_ID or (in_document_url and len(run) not in KEY_RUN_LENGTHS):
        return False
    if _secret_like(run):
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
        links = _document_links(spelled) if "://" in spelled else []
        for run in _LONG_RUN.finditer(spelled):
            start, end = run.span()
            in_document = any(a <= start and end <= b for a, b in links)
            if _held_run(run.group(), in_document):
                spans.append((start, end))
    return spans


def _document_links(spelled: str) -> list[tuple[int, int]]:
    """Where what follows the host of a document service's URL (``DOCUMENT_HOSTS``: its
    path, query and fragment) is in ``spelled``."""
    links = []
    for url in _URL.finditer(spelled):
        host = url[1].lower().rstrip(".")
        if url[2] and any(host == d or host.endswith("." + d) for d in DOCUMENT_HOSTS):
            links.append(url.span(2))
    return links


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
    """``text`` with what ``spans_of`` finds in it or in its most decoded reading
    (``readings``) redacted. When neither shows anything, ``text`` as it came; else the
    most decoded reading, redacted, and with anything found in the text as it came
    redacted too, wherever it is left.
    Only the first ``LONGEST_READ`` characters are read, and kept; when a reading grew
    past that and was cut, its cut form is what is kept (the text as it came could hold
    a key beyond the cut)."""
    if len(text) > LONGEST_READ:
        text = text[:LONGEST_READ] + "..."
    views = readings(text)
    final, spans = views[-1], spans_of(views[-1])
    # The text as it came, and its most decoded reading: decoding only ever joins a key's
    # characters, so a reading between shows nothing neither shows (each costs a search).
    first = spans_of(text) if len(views) > 1 else []
    if not spans and not first and all(len(view) < LONGEST_READ for view in views[1:]):
        return text
    result = _cut(final, spans)
    if len(final) >= LONGEST_READ:  # a reading was cut: what it left out is not shown
        result += "..."
    for start, stop in first:
        result = result.replace(text[start:stop], REDACTED)
    return result


def holds_key(text: str) -> bool:
    """True when ``text``, however spelled (``readings``), holds a key (``PASTED_KEY``) or
    what could be its secret (``_held_run``), or grows past ``LONGEST_READ`` characters
    once decoded (what a reading cuts off is unread: 113 U+FDFA, 18 characters each in
    compatibility form, hid a fullwidth key after them). Long words and names, hex
    digests and document ids pass: this decides what input is refused, where a false
    alarm costs a user (``KEY_SHAPE`` decides what logs hide)."""
    views = readings(text)
    return any(len(view) >= LONGEST_READ for view in views[1:]) or any(
        _held_spans(spelled) for spelled in views
    )


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
