"""Commands sent ahead of their replies, so that Redis works while Python does.

A rebuild reads the log in batches, folds each and writes the result. Done one after
the other, Python waits while Redis reads or writes and Redis idles while Python
folds. Here each of the two streams of commands has a connection of its own, taken
from the client's pool: ``ReadAhead`` sends the next batch's ``XRANGE`` before the
current batch is folded and ``SentWrites`` sends a batch's writes at once and reads
their replies only when the next batch's writes go out. Order is kept on each
connection, as Redis answers in order, and nothing is left unanswered: both read
every reply due before they return their connection (or drop it, if they cannot).

Commands are packed by hiredis directly (what redis-py's hiredis packer calls, without
its per-argument check for ``bytearray`` and ``memoryview``, which callers here never
pass): arguments are ``str``, ``bytes``, ``int`` or ``float``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import hiredis
import redis

from keyledger.adapters.redis_client import Entries

Command = Sequence[str | bytes | int | float]


class _Dedicated:
    """One connection of the client's pool, held until ``close``; ``unread`` replies due."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._connection: Any = None
        self.unread = 0

    def _send(self, commands: list[Command]) -> None:
        if self._connection is None:
            self._connection = self._pool.get_connection()
        # hiredis's stub types the tuple as one of a single item.
        packed = [hiredis.pack_command(tuple(c)) for c in commands]  # type: ignore[arg-type]
        self._connection.send_packed_command(packed)
        self.unread += len(commands)

    def _reply(self) -> Any:
        self.unread -= 1
        return self._connection.read_response()

    def close(self) -> None:
        if self._connection is None:
            return
        if self.unread:
            self._connection.disconnect()  # replies left unread: the connection is not reusable
            self.unread = 0
        self._pool.release(self._connection)
        self._connection = None


class SentWrites(_Dedicated):
    """Batches of writes, each sent at once; a batch's replies are read when the next is sent."""

    def send(self, commands: list[Command]) -> None:
        """Read the previous batch's replies (raising its first error), then send these."""
        self.wait()
        if commands:
            self._send(commands)

    def wait(self) -> None:
        """Read every reply due; the first error reply is raised once all are read."""
        error: redis.ResponseError | None = None
        while self.unread:
            try:
                self._reply()
            except redis.ResponseError as exc:
                error = error or exc
        if error is not None:
            raise error

    def __enter__(self) -> SentWrites:
        return self

    def __exit__(self, kind: object, *_rest: object) -> None:
        try:
            if kind is None:
                self.wait()
            else:
                self._settle()
        finally:
            self.close()

    def _settle(self) -> None:
        """On the way out of an error: let the writes sent finish (their errors are not
        the one being raised), so that none lands after whatever cleans up next."""
        with contextlib.suppress(redis.RedisError):  # a failed connection: close() drops it
            self.wait()


class ReadAhead(_Dedicated):
    """``XRANGE`` of one stream, a batch ahead: ``ask`` sends it, ``take`` reads it."""

    def __init__(self, client: redis.Redis, stream: str, count: int) -> None:
        super().__init__(client)
        self.stream, self.count = stream, count

    def ask(self, after: str) -> None:
        """Ask for the entries after ``after`` (an entry id; ``-`` for the first ones)."""
        low = after if after == "-" else f"({after}"
        self._send([("XRANGE", self.stream, low, "+", "COUNT", self.count)])

    def take(self) -> Entries:
        """The entries asked for, as ``as_entries`` gives them (a deleted entry: no fields)."""
        entries: Entries = []
        for entry_id, flat in self._reply() or []:
            pairs = iter(flat or ())  # field, value, field, value...
            entries.append((str(entry_id), dict(zip(pairs, pairs, strict=True))))
        return entries

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
