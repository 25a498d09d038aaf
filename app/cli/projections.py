"""Projection rebuilds through the RQ worker queue (issue 3)."""

from __future__ import annotations
