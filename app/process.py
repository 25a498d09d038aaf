"""This process's id, without a system call.

``os.getpid()`` is a system call on every call (glibc stopped caching it), and the
request path asked it several times per request (has this process been forked
since the cache, the lease or the notes were made? which pid goes in the access
line?). Measured on the 2-core machine under load: about 6% of a web worker's
samples. The id is kept here and renewed in a child after every ``os.fork``.
"""

from __future__ import annotations

import os

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def pid() -> int:
    """``os.getpid()``, as of the latest fork."""
    return _pid
