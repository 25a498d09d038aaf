"""Commands sent ahead of their replies: in order, every reply read, errors raised."""

from __future__ import annotations

import pytest
import redis

from keyledger.adapters.ahead import ReadAhead, SentWrites
from keyledger.adapters.redis_client import as_entries


def test_read_ahead_gives_what_xrange_gives(redis_client: redis.Redis, namespace: str) -> None:
    stream = f"{namespace}:log"
    for n in range(1, 8):
        redis_client.xadd(stream, {"n": str(n), "text": 'é \u2028 "q"'}, id=f"5-{n}")
    redis_client.xadd(stream, {"only": "field"}, id="6-0")
    with ReadAhead(redis_client, stream, 3) as log:
        log.ask("-")
        first = log.take()
        log.ask(first[-1][0])
        second = log.take()
        log.ask("6-0")
        assert log.take() == []
    assert first == as_entries(redis_client.xrange(stream, count=3))
    assert second == as_entries(redis_client.xrange(stream, min="(5-3", count=3))


def test_sent_writes_apply_in_order_and_are_all_answered_before_the_end(
    redis_client: redis.Redis, namespace: str
) -> None:
    key = f"{namespace}:counter"
    with SentWrites(redis_client) as writes:
        for n in range(5):
            writes.send([("SET", key, n), ("INCRBY", key, 10)])
        assert writes.unread == 2  # the last batch's replies are read at the end
    assert writes.unread == 0
    assert redis_client.get(key) == "14"


def test_an_error_reply_is_raised_after_every_reply_is_read(
    redis_client: redis.Redis, namespace: str
) -> None:
    key = f"{namespace}:text"
    writes = SentWrites(redis_client)
    writes.send([("SET", key, "a"), ("INCR", key), ("SET", f"{key}:after", "b")])
    with pytest.raises(redis.ResponseError, match="not an integer"):
        writes.wait()
    assert writes.unread == 0
    writes.send([("GET", key)])  # the connection still serves, in step with its replies
    writes.wait()
    writes.close()
    assert redis_client.get(f"{key}:after") == "b"


def test_a_connection_left_with_replies_due_is_dropped(redis_client: redis.Redis) -> None:
    writes = SentWrites(redis_client)
    writes.send([("PING",), ("PING",)])
    connection = writes._connection
    writes.close()  # as on an error: the replies due are not read
    assert connection._sock is None  # disconnected, not handed back out of step


def test_writes_sent_before_an_error_are_answered_before_the_connection_goes(
    redis_client: redis.Redis, namespace: str
) -> None:
    key = f"{namespace}:late"
    with pytest.raises(RuntimeError, match="fold failed"), SentWrites(redis_client) as writes:
        writes.send([("SET", key, "sent"), ("INCR", key)])  # INCR fails: not the error raised
        raise RuntimeError("fold failed")
    assert writes.unread == 0
    assert redis_client.get(key) == "sent"
