"""KEYLEDGER_LOG_FORMAT=json: one JSON object per line, with the request's fields."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from keyledger.observability.logs import JsonFormatter, loggable, redact_keys, utc_time


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("keyledger.request", logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_a_record_is_one_json_object_with_time_level_logger_and_message() -> None:
    line = JsonFormatter().format(record("GET %s %d", "/v1/", 200))

    parsed = json.loads(line)
    assert parsed["level"] == "INFO"
    assert parsed["logger"] == "keyledger.request"
    assert parsed["message"] == "GET /v1/ 200"
    assert parsed["time"].endswith("Z") and "T" in parsed["time"]
    assert isinstance(parsed["pid"], int)


def test_the_fields_a_record_carries_become_fields_of_the_line() -> None:
    fields = {"request_id": "abc-1", "status": 401, "policy": "secret_key_valid"}
    parsed = json.loads(JsonFormatter().format(record("denied", **fields)))
    assert {k: parsed[k] for k in fields} == fields
    assert "args" not in parsed and "msg" not in parsed and "levelno" not in parsed


def test_newlines_never_split_a_record_over_lines() -> None:
    try:
        raise ValueError("first\nsecond")
    except ValueError:
        made = record("a\nb", reason="x\ny")
        made.exc_info = sys.exc_info()
    line = JsonFormatter().format(made)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "a\nb"
    assert "ValueError: first\nsecond" in parsed["exception"]


def test_no_line_reader_splits_a_record_at_a_c1_control_or_unicode_separator() -> None:
    """JSON only requires escaping below U+0020; ``str.splitlines`` (honcho, many log
    shippers) also breaks at NEL, U+2028 and U+2029 (outside review, finding 3)."""
    path = "/j4\x85X\u2028Y\u2029Z\nW\x1b[31m\x9b"
    line = JsonFormatter().format(record("GET %s", path, path=path))
    assert len(line.splitlines()) == 1
    assert json.loads(line)["path"] == path


def test_a_value_json_cannot_encode_is_written_as_text() -> None:
    parsed = json.loads(JsonFormatter().format(record("x", thing={1, 2}.__class__)))
    assert parsed["thing"] == "<class 'set'>"


def test_times_are_utc_with_milliseconds() -> None:
    assert utc_time(0.1234) == "1970-01-01T00:00:00.123Z"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/klsk_0123456789abcdefABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkl012345",
        "/x/klak_0123456789abcdef0123456789abcdefghij",
    ],
)
def test_a_key_misplaced_in_a_path_is_redacted(path: str) -> None:
    redacted = redact_keys(path)
    assert "kl" not in redacted.split("/")[-1].replace("[redacted-key]", "")
    assert "[redacted-key]" in redacted


def test_a_path_without_a_key_is_left_alone() -> None:
    assert redact_keys("/v1/api-keys/klsk-is-a-fine-name") == "/v1/api-keys/klsk-is-a-fine-name"


SECRET = "0123456789abcdefABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkl012345"


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/KLSK_{SECRET}",  # the prefix upper-cased
        f"/v1/Klak_{SECRET}",
        f"/v1/klsk-{SECRET}",  # a hyphen for the underscore
        f"/v1/keys/{SECRET[16:]}",  # the secret's body alone, without prefix or key id
        f"/v1/keys/{SECRET[16:]}.json",
        f"/v1/keys/x{SECRET}y/more",
        f"/v1/keys/{SECRET[16:49]}",  # 33 characters of the secret: more than any id
        f"/v1/keys/{SECRET[16:56].translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})}",
    ],
)
def test_a_key_a_client_mangled_is_redacted_too(path: str) -> None:
    redacted = redact_keys(path)
    assert SECRET[16:56] not in redacted
    assert "[redacted-key]" in redacted


@pytest.mark.parametrize(
    "path",
    [
        "/v1/api-keys/ci-deploy-key",
        "/v1/auth/check",
        "/v1/keys/" + "a" * 32,  # as long as the longest id keyledger writes
        "/v1/users/0f8fad5bd9cb469fa16570867728950e",
        "/v1/api-keys/klsk-is-a-fine-name-for-a-key-of-the-ci",
        "",
    ],
)
def test_ordinary_paths_are_left_alone(path: str) -> None:
    assert redact_keys(path) == path


def test_a_value_is_cut_after_its_keys_are_redacted() -> None:
    """A cut first could leave the start of a key that the pattern no longer matches."""
    text = "/v1/" + "x" * 20 + "/" + SECRET
    cut = loggable(text, 30)
    assert cut == ("/v1/" + "x" * 20 + "/[redacted-key]")[:30] + "..."
    assert SECRET[:6] not in cut
    assert loggable("/v1/users", 40) == "/v1/users"
