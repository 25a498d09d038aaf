"""The policies' inputs cannot change under them (found by ``make mutate``, docs/mutation.md).

A policy is a pure function of the facts; the engine hands the same facts to every
policy in turn, so none of them may be able to alter what the next one sees.
"""

from __future__ import annotations

import dataclasses

import pytest

from keyledger.policies.decision import Decision
from keyledger.policies.facts import (
    AccountKeyRecord,
    AccountRecord,
    AuthFacts,
    SecretKeyRecord,
    UserRecord,
)

RECORDS = [
    AccountRecord("acc-1", "Acme", True),
    AccountKeyRecord("ak-1", "acc-1"),
    SecretKeyRecord("sk-1", "acc-1", "ann-key", "u-1", ()),
    UserRecord("u-1", "acc-1", "Ann", "Viewer"),
    AuthFacts("GET", "/v1/users", "10.0.0.1"),
    Decision.allow("test"),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_facts_records_and_decisions_cannot_be_changed(record: object) -> None:
    field = dataclasses.fields(record)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, field, "changed")
