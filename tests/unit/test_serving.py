"""``keyledger serve``'s configuration of Granian: settings, log formats, redaction."""

from __future__ import annotations

import logging

import pytest

from keyledger import serving
from keyledger.domain.tokens import KeyKind, generate


def test_workers_default_to_two_and_follow_web_concurrency() -> None:
    assert serving.workers_from({}) == 2
    assert serving.workers_from({"WEB_CONCURRENCY": ""}) == 2
    assert serving.workers_from({"WEB_CONCURRENCY": "5"}) == 5


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_web_concurrency_that_is_no_number_of_processes_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="WEB_CONCURRENCY"):
        serving.workers_from({"WEB_CONCURRENCY": value})


def test_the_server_binds_host_and_port_with_the_app_factory_in_each_worker() -> None:
    server = serving.server({"HOST": "0.0.0.0", "PORT": "9123", "WEB_CONCURRENCY": "3"})
    assert (server.bind_addr, server.bind_port, server.workers) == ("0.0.0.0", 9123, 3)
    assert (server.target, server.factory, server.interface.value) == (
        "keyledger:create_app",
        True,
        "wsgi",
    )
    assert server.respawn_failed_workers and server.workers_kill_timeout == serving.KILL_AFTER
    assert server.log_access


def test_the_server_defaults_to_the_loopback_on_8080() -> None:
    server = serving.server({})
    assert (server.bind_addr, server.bind_port, server.workers) == ("127.0.0.1", 8080, 2)


def test_an_ipv6_host_in_brackets_is_bound_as_the_bare_address() -> None:
    assert serving.server({"HOST": "[::]"}).bind_addr == "::"


def test_json_logs_replace_the_access_log_and_format_the_servers_lines() -> None:
    server = serving.server({}, log_format="json")
    assert not server.log_access
    formatters = serving.log_config("json")["formatters"]
    assert {f["()"] for f in formatters.values()} == {"keyledger.observability.logs.JsonFormatter"}


def access_record(path: str) -> logging.LogRecord:
    return logging.LogRecord(
        "granian.access",
        logging.INFO,
        "",
        0,
        '"%(method)s %(path)s"',
        ({"method": "GET", "path": path},),
        None,
    )


def test_a_key_in_an_access_lines_path_is_redacted() -> None:
    token = generate(KeyKind.SECRET, 3).token
    record = access_record(f"/v1/api-keys/{token}")
    assert serving.RedactKeys().filter(record)
    assert record.getMessage() == '"GET /v1/api-keys/[redacted-key]"'


def test_an_access_line_without_a_key_is_left_alone() -> None:
    record = access_record("/v1/api-keys/klsk-is-a-fine-name")
    serving.RedactKeys().filter(record)
    assert record.getMessage() == '"GET /v1/api-keys/klsk-is-a-fine-name"'


def test_a_key_in_any_value_of_an_access_line_is_redacted() -> None:
    """The request id is the client's to choose: a key put there is redacted like one in the
    path (second outside review, finding 6)."""
    token = generate(KeyKind.ACCOUNT, 3).token
    record = logging.LogRecord(
        "granian.access",
        logging.INFO,
        __file__,
        1,
        "rid=%(rid)s %(path)s",
        ({"rid": token, "path": "/v1/"},),
        None,
    )
    serving.RedactKeys().filter(record)
    assert record.getMessage() == "rid=[redacted-key] /v1/"


def test_control_characters_in_an_access_lines_values_are_escaped() -> None:
    """Granian hands over the path decoded: ``%0A`` would start a forged line of its own."""
    record = access_record("/v1/x\nFORGED keyledger.auth: granted everything\r\x1b[31m")
    serving.RedactKeys().filter(record)
    message = record.getMessage()
    assert "\n" not in message and "\r" not in message and "\x1b" not in message
    assert message == '"GET /v1/x\\x0aFORGED keyledger.auth: granted everything\\x0d\\x1b[31m"'
