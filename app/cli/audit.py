"""Tamper evidence: verify the hash chains of the log (issue 3)."""

from __future__ import annotations
