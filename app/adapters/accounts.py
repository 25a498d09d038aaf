"""Loads account state by folding its events, remembering folds between calls.

Each process keeps the last folded state of recently used accounts with the
stream id it reached. Commands read the newer entries (one ``XRANGE``) before
deciding; reads answer from memory while no change to the account has been
announced since (the append script and the projector announce every change on
the invalidation channel), so ``GET /v1/`` costs no round trip.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from keyledger.adapters.authcache import AuthCache
from keyledger.adapters.eventstore import EventStore
from keyledger.domain.account import AccountState


class AccountRepository:
    def __init__(self, store: EventStore, capacity: int = 10_000, changes: AuthCache | None = None):
        self.store = store
        self.capacity = capacity
        self.changes = changes
        self._folds: OrderedDict[str, tuple[AccountState, str]] = OrderedDict()
        self._clean: set[str] = set()
        self._lock = threading.Lock()
        if changes is not None:
            changes.subscribe(self._changed)

    def _changed(self, accounts: list[str] | None) -> None:
        with self._lock:
            if accounts is None:
                # Anything may have changed, even backwards: after a failover the new
                # primary may lack the last events folded here. Fold afresh.
                self._folds.clear()
                self._clean.clear()
            else:
                self._clean.difference_update(accounts)

    def load(self, account_id: str, fresh: bool = True) -> AccountState:
        """The account's current state.

        ``fresh=False`` (reads) may answer from memory without a round trip while
        no change to the account has been announced on the invalidation channel
        since the fold was last brought up to date. Commands always read the log.
        """
        epoch = None if self.changes is None else self.changes.sync()
        watching = epoch is not None
        if not fresh and watching:
            with self._lock:
                known = self._folds.get(account_id)
                if known is not None and account_id in self._clean:
                    return known[0]
        with self._lock:
            state, position = self._folds.get(account_id, (AccountState(id=account_id), "0"))
        stored = list(self.store.iter_account(account_id, after=position))
        if stored:
            state = state.evolve([s.event for s in stored])
            position = stored[-1].entry_id
        if state.exists:
            with self._lock:
                known = self._folds.get(account_id)
                if known is None or known[0].version <= state.version:
                    self._folds[account_id] = (state, position)
                    # Clean only if no change was announced while we read (another
                    # thread may have drained it): the listener runs under this lock.
                    if watching and self.changes is not None and self.changes.epoch == epoch:
                        self._clean.add(account_id)
                self._folds.move_to_end(account_id)
                while len(self._folds) > self.capacity:
                    evicted, _ = self._folds.popitem(last=False)
                    self._clean.discard(evicted)
        return state
