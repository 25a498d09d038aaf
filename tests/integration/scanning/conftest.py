"""Fixtures of the secret-scanning tests: a GitHub signer, a container reading its keys
file, and a Flask test client of the app over that container."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from keyledger import create_app
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from tests.integration.lifecycle_helpers import GitHubSigner

PATH = "/v1/secret-scanning/github"


def send(client: FlaskClient, github: GitHubSigner, body: bytes, **headers: str) -> Any:
    """A report as GitHub sends it: the raw body, signed (``headers`` added or replaced)."""
    return client.post(PATH, data=body, headers={**github.headers(body), **headers})


@pytest.fixture
def github() -> GitHubSigner:
    return GitHubSigner()


@pytest.fixture
def container(
    settings: Settings, redis_client: Any, github: GitHubSigner, tmp_path: Path
) -> Container:
    keys = github.write_keys_file(tmp_path / "github-keys.json")
    return build(dataclasses.replace(settings, secret_scanning_keys=str(keys)))


@pytest.fixture
def client(container: Container) -> Iterator[FlaskClient]:
    with create_app({"container": container, "TESTING": True}).test_client() as test_client:
        yield test_client
