"""What Redis runs while a block of a test runs, the commands of Lua scripts included.

``MONITOR`` streams every command the server executes, with the client that sent it
(``lua`` for a script's own calls): the one view of what a request costs Redis that
a client-side spy cannot give, since most of the reads happen inside scripts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class Command:
    name: str  # upper case: XRANGE, ZREVRANGE, ...
    args: tuple[str, ...]
    in_script: bool

    def count_argument(self) -> int | None:
        """The ``COUNT`` of an ``XRANGE``/``XREVRANGE``, None when it has none."""
        upper = [a.upper() for a in self.args]
        if "COUNT" not in upper:
            return None
        return int(self.args[upper.index("COUNT") + 1])


@contextmanager
def commands_on(redis_url: str, fragment: str) -> Iterator[list[Command]]:
    """Collects, once the block ends, every command naming a key that contains ``fragment``."""
    seen: list[Command] = []
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    marker = f"monitor-done-{uuid.uuid4().hex}"
    try:
        with client.monitor() as monitor:
            yield seen
            redis.Redis.from_url(redis_url).echo(marker)
            for item in monitor.listen():
                words = item["command"].split(" ")
                if words[0].upper() == "ECHO" and marker in words:
                    break
                if any(fragment in word for word in words[1:]):
                    seen.append(
                        Command(words[0].upper(), tuple(words[1:]), item["client_type"] == "lua")
                    )
    finally:
        client.close()
