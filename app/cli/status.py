"""keyledger status: health of the log, the projections and the Redis settings."""

from __future__ import annotations
