"""Schemathesis against keyledger's own OpenAPI document, in process.

Every operation of ``/v1/openapi.json`` gets generated requests (through the WSGI
app, a real Redis and a running projector) with both keys of an account's Owner,
the rate limit and the failure throttle off. No response may be a server error,
and every response must match what the document says about it.

Requires ``schemathesis`` (a dev dependency).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from flask import Flask
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from keyledger import create_app
from keyledger.bootstrap import build
from keyledger.config import Settings
from tests.conftest import RunningProjector
from tests.integration.conftest import module_container
from tests.integration.helpers import Bootstrapped, bootstrap

#: Examples per operation: about 25 s for the whole document on a 2-core machine.
MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, response_schema_conformance]


class Fuzzed:
    def __init__(self, app: Flask, owner: Bootstrapped):
        self.app = app
        self.owner = owner

    @property
    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.owner.account_key, "x-api-secret-key": self.owner.secret_key}


@pytest.fixture(scope="module")
def fuzzed(redis_url: str) -> Iterator[Fuzzed]:
    with module_container(redis_url) as container, RunningProjector(container):
        owner = bootstrap(container)
        yield Fuzzed(create_app({"container": container, "TESTING": True}), owner)


def document_app() -> Flask:
    """The app only to read the document from: it never reaches Redis (the document needs
    none), so the schema can be loaded when this module is collected."""
    return create_app({"container": build(Settings(redis_url="redis://127.0.0.1:1/0"))})


# ``schemathesis.pytest.from_fixture`` (lazy loading) fails under pytest 9 in
# schemathesis 4.32.5 ('Function' object has no attribute '_nodeid'), so the schema
# is loaded eagerly and every call is sent to the test's own app (``app=``).
schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", document_app())


def call_and_check(case: Any, fuzzed: Fuzzed) -> None:
    case.call_and_validate(headers=fuzzed.headers, checks=CHECKS, app=fuzzed.app)


SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)


@schema.parametrize()
@SETTINGS
def test_no_server_error_and_every_response_matches_the_document(case: Any, fuzzed: Fuzzed) -> None:
    call_and_check(case, fuzzed)
