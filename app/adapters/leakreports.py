"""Account keys reported leaked that still work, as the auth projection lists them."""

from __future__ import annotations

import json
from typing import Any

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.topology import Client


def reported_account_keys(client: Client, keys: Keyspace) -> list[dict[str, Any]]:
    """``[{"accountId", "url", "reportedTimestamp"}]``, oldest report first."""
    pipe = client.pipeline(transaction=False)
    for partition in range(keys.partitions):
        pipe.hgetall(keys.leaked_account_keys(partition))
    found = []
    for reports in pipe.execute():
        for member, text in reports.items():
            try:
                report = json.loads(text)
            except ValueError:
                report = {}
            found.append(
                {
                    "accountId": str(member).rsplit(":", 1)[0],
                    "url": report.get("url", ""),
                    "reportedTimestamp": report.get("time"),
                }
            )
    return sorted(found, key=lambda r: (str(r["reportedTimestamp"]), r["accountId"]))
