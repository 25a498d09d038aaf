"""The built wheel, installed next to a Flask service whose own package is named ``app``.

The wheel is built from this checkout, installed into a fresh virtual
environment, and imported by ``tests/e2e/service_app`` (a package named ``app``
with its own ``create_app``), which runs under a real server against the
running keyledger of this module's stack.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.harness import (
    ROOT,
    Process,
    Stack,
    Tenant,
    free_port,
    unique_key_name,
    wait_for,
)

pytestmark = pytest.mark.e2e

SERVICE = Path(__file__).resolve().parent / "service_app"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("keyledger-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    subprocess.run(
        [str(where / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return where


@pytest.fixture(scope="module")
def service(venv: Path, stack: Stack) -> Iterator[str]:
    """The service under gunicorn from the fresh environment, in its own directory."""
    port = free_port()
    log_path = stack._log_path("service")  # scanned for secrets with the others
    env = stack.env()
    env["PATH"] = f"{venv / 'bin'}:/usr/bin:/bin"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [str(venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{port}", "app:create_app()"],
            cwd=SERVICE,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process = Process("service", popen, log_path)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if not process.running:
            raise AssertionError(f"the service exited:\n{process.log_text()}")
        try:
            return requests.get(f"{url}/whoami-package", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, timeout=30, what="the service to answer")
        yield url
    finally:
        process.stop()


def test_the_wheel_installs_only_the_keyledger_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/", 1)[0] for name in names if "/" in name}
    top = {name for name in top if not name.endswith((".dist-info", ".data"))}
    assert top == {"keyledger"}
    assert "keyledger/policies/engine.py" in names
    assert "keyledger/workers/projector.py" in names


def test_the_wheel_carries_the_console_and_the_swagger_ui_template(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    console = ROOT / "app" / "web" / "console"
    shipped = {
        f"keyledger/web/console/{path.relative_to(console)}"
        for path in console.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert "keyledger/web/console/static/js/main.js" in shipped
    assert shipped <= names
    assert "keyledger/templates/swagger_ui.html" in names


def test_the_service_keeps_its_own_app_package(service: str) -> None:
    found = requests.get(f"{service}/whoami-package", timeout=5).json()
    assert found["app"] == "app"
    assert Path(found["file"]).resolve() == (SERVICE / "app" / "__init__.py").resolve()


def test_both_keys_pass_and_the_principal_reaches_the_view(service: str, tenant: Tenant) -> None:
    response = requests.get(
        f"{service}/orders",
        headers={"x-api-key": tenant.account_key, "x-api-secret-key": tenant.secret_key},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "service": "orders",
        "account": tenant.account_id,
        "role": "Owner",
    }


def test_without_the_secret_key_the_service_answers_401(service: str, tenant: Tenant) -> None:
    response = requests.get(f"{service}/orders", headers={"x-api-key": tenant.account_key})
    assert response.status_code == 401


def test_a_viewers_write_is_403_and_read_is_200(service: str, tenant: Tenant) -> None:
    user = tenant.owner.add_user("Service Viewer", role="Viewer")
    secret = tenant.owner.create_key(unique_key_name("svcview"), user["id"])["secretKey"]
    headers = {"x-api-key": tenant.account_key, "x-api-secret-key": secret}
    assert requests.post(f"{service}/orders", headers=headers, timeout=10).status_code == 403
    assert requests.get(f"{service}/orders", headers=headers, timeout=10).status_code == 200
