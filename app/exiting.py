"""Work a process does when it ends normally, in every kind of process keyledger runs.

``atexit`` runs when the interpreter exits. Granian's web workers are processes
started by ``multiprocessing`` with fork, and such a process ends with
``os._exit`` once its work returns: ``atexit`` never runs there, but
``multiprocessing``'s finalizers do (its ``_exit_function``). ``at_exit``
registers with both; a callback may therefore run twice (in a process started
with spawn, which exits through the interpreter after its finalizers), so it
must do nothing the second time (each caller's flush writes only what is still
pending).
"""

from __future__ import annotations

import atexit
import multiprocessing.util
from collections.abc import Callable

#: Finalizers with a higher priority run first; ours all flush buffers, in any order.
PRIORITY = 100


def at_exit(callback: Callable[[], object]) -> None:
    atexit.register(callback)
    multiprocessing.util.Finalize(None, callback, exitpriority=PRIORITY)
