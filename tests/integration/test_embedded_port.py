"""An embedded Redis answers on a port of its own: two ``keyledger run`` started at once
chose the same free port, the second server could not listen and exited, and its start
took the first one's answer as its own (it then ran on the other instance's data)."""

from __future__ import annotations

from pathlib import Path

import redis

from keyledger.adapters.embedded import EmbeddedRedis


def test_a_server_whose_port_is_taken_starts_on_another(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path / "first", persistent=False)
    first.start()
    try:
        second = EmbeddedRedis(tmp_path / "second", port=first.port, persistent=False)
        url = second.start()
        try:
            assert second.port != first.port and url == second.url
            answering = redis.Redis.from_url(url).info("server")["process_id"]
            assert second.process is not None and answering == second.process.pid
            assert redis.Redis.from_url(first.url).info("server")["process_id"] != answering
        finally:
            second.stop()
    finally:
        first.stop()
