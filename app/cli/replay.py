"""For auditors: replay the history and fold the state at a point in time (issue 3)."""

from __future__ import annotations
