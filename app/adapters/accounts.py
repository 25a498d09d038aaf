"""Loads account state by folding its events, remembering folds between calls.

Each process keeps the last folded state of recently used accounts with the
stream id it reached, and on every load reads only the newer entries (one
``XRANGE`` round trip), so a state is always current without refolding the
whole history.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from app.adapters.eventstore import EventStore
from app.domain.account import AccountState


class AccountRepository:
    def __init__(self, store: EventStore, capacity: int = 10_000):
        self.store = store
        self.capacity = capacity
        self._folds: OrderedDict[str, tuple[AccountState, str]] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, account_id: str) -> AccountState:
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
                self._folds.move_to_end(account_id)
                while len(self._folds) > self.capacity:
                    self._folds.popitem(last=False)
        return state
