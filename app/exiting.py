"""Work a process does when it ends normally, in every kind of process keyledger runs.

``atexit`` runs when the interpreter exits. Granian's web workers are processes
started by ``multiprocessing`` with fork, and such a process ends with
``os._exit`` once its work returns: ``atexit`` never runs there, but
``multiprocessing``'s finalizers do (its ``_exit_function``). ``at_exit``
registers with both, and runs the callback only the first time either calls it
in a process (a process that exits through the interpreter runs both).
"""

from __future__ import annotations

import atexit
import multiprocessing.util
import os
from collections.abc import Callable

#: Finalizers with a higher priority run first; ours all flush buffers, in any order.
PRIORITY = 100


def at_exit(callback: Callable[[], object]) -> None:
    """Run ``callback`` once when this process ends normally, however it ends."""
    ran_in: list[int] = []

    def once() -> None:
        if os.getpid() in ran_in:  # the other registration ran it already
            return
        ran_in.append(os.getpid())
        callback()

    atexit.register(once)
    multiprocessing.util.Finalize(None, once, exitpriority=PRIORITY)
