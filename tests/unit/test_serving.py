"""``keyledger serve``'s configuration of Granian: settings, log formats, redaction."""

from __future__ import annotations

import pytest

from keyledger import serving


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
        "keyledger.serving:served_app",
        True,
        "wsgi",
    )
    assert server.respawn_failed_workers and server.workers_kill_timeout == serving.KILL_AFTER
    assert not server.log_access  # keyledger writes the access lines (test_access_log.py)


def test_the_server_defaults_to_the_loopback_on_8080() -> None:
    server = serving.server({})
    assert (server.bind_addr, server.bind_port, server.workers) == ("127.0.0.1", 8080, 2)


def test_an_ipv6_host_in_brackets_is_bound_as_the_bare_address() -> None:
    assert serving.server({"HOST": "[::]"}).bind_addr == "::"


def test_json_logs_format_the_servers_lines() -> None:
    formatters = serving.log_config("json")["formatters"]
    assert {f["()"] for f in formatters.values()} == {"keyledger.observability.logs.JsonFormatter"}
