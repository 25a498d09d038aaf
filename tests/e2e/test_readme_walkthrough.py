"""The README's walk-through, run as written against a real server.

The shell blocks of the "Five-minute walk-through" section are extracted and
run with bash; only the address (``localhost:8080``) is pointed at the server
under test. If the README and the product drift apart, this fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from app.adapters.embedded import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def walkthrough_script(port: int) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Five-minute walk-through", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    commands = [b for b in blocks if "make run" not in b]
    script = "\n".join(commands).replace("localhost:8080", f"127.0.0.1:{port}")
    return script.replace("source .venv/bin/activate", f'export PATH="{BIN}:$PATH"')


@pytest.fixture
def server(redis_url: str, tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    namespace = f"readme{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "KEYLEDGER_NAMESPACE": namespace,
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    log = (tmp_path / "server.log").open("w")
    processes = [
        subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "--no-control-socket",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "app:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [str(BIN / "keyledger"), "projector"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "web server did not start"
            time.sleep(0.1)
        yield port, env
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{namespace}:*"))
        if keys:
            client.delete(*keys)


def test_readme_walkthrough_runs_as_written(
    server: tuple[int, dict[str, str]], tmp_path: Path
) -> None:
    port, env = server
    script = "set -euo pipefail\n" + walkthrough_script(port)
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    codes = re.findall(r"^(\d{3})$", result.stdout, re.M)
    assert codes == ["401", "403", "200"], result.stdout
    assert '"accountName":"Acme Inc"' in result.stdout
    assert '"apiKeyName":"ann-rescue-key-1"' in result.stdout
