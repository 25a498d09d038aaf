"""Which sockets have something to read now, asked without letting go of the GIL.

The authentication cache asks this before every lookup (``AuthCache.sync``): have
invalidations arrived on the subscription's socket? ``select.select(…, 0)``
answers, but CPython lets go of the GIL around every such system call, even one
that cannot wait; with several server threads in a process, each request then
hands the GIL to another thread and back. On the 2-core machine that cost about
two context switches per decision: 18 us of work took 86 us a call with two
threads (``bench`` notes in docs/operators.md, "Performance").

``poll(2)`` with a timeout of 0 never waits, so it is called here through
``ctypes.PyDLL``, which keeps the GIL for the call. Where that is not available
(no ``poll`` in the C library), ``select`` answers as before.
"""

from __future__ import annotations

import ctypes
import select
from collections.abc import Sequence
from typing import Any, Protocol


class Selectable(Protocol):
    def fileno(self) -> int: ...


class PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


def _libc_poll() -> Any:
    try:
        poll = ctypes.PyDLL(None).poll  # PyDLL: the GIL is kept during the call
    except (OSError, AttributeError):
        return None
    poll.restype = ctypes.c_int  # no argtypes: the arguments below are already C values
    return poll


_POLL = _libc_poll()


class Poller:
    """Asks whether any of a fixed set of sockets has something to read (or an error or
    hang-up to report), never waiting, and keeping the GIL while ``poll`` runs."""

    def __init__(self, sockets: Sequence[Selectable]):
        self.sockets = list(sockets)
        self._count = ctypes.c_ulong(len(self.sockets))
        self._now = ctypes.c_int(0)
        self._fds = (PollFd * len(self.sockets))(
            *(PollFd(sock.fileno(), select.POLLIN, 0) for sock in self.sockets)
        )

    def any(self) -> bool:
        if _POLL is not None:
            # poll(2) writes every revents and returns how many are set: the array may be
            # shared by threads, as the call runs whole under the GIL.
            found = _POLL(self._fds, self._count, self._now)
            if found >= 0:
                return bool(found)
        return bool(select.select(self.sockets, [], [], 0)[0])


def readable(sockets: Sequence[Selectable]) -> set[int]:
    """The indexes of ``sockets`` that have something to read now (``select``: it lets the
    GIL go, so only for the rare path that drains them)."""
    ready = set(select.select(list(sockets), [], [], 0)[0])
    return {i for i, sock in enumerate(sockets) if sock in ready}
