"""The README's walk-through, run as written against a real server.

The shell blocks of the "Five-minute walk-through" section are extracted and
run with bash; only the address (``localhost:8080``) is pointed at the server
under test. If the README and the product drift apart, this fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Stack

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
    """A projector and a web server, as ``make run`` starts them (the e2e harness)."""
    stack = Stack(redis_url, tmp_path / "stack")
    try:
        web = stack.start()
        yield int(web.url.rsplit(":", 1)[1]), stack.env()
    finally:
        stack.stop_all()


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
    # both keys required; subnet refused, then allowed; the key's life: an old secret in
    # its grace and the new one, an expired key, a disabled key, the same enabled again
    assert codes == ["401", "403", "200", "200", "200", "401", "401", "200"], result.stdout
    assert '"accountName":"Acme Inc"' in result.stdout
    assert '"apiKeyName":"ann-rescue-key-1"' in result.stdout
    assert re.search(
        r"^x-api-key-expires: \d{4}-\d\d-\d\dT[\d:.]+Z\s*$", result.stdout, re.M | re.I
    )
    assert "\ndisabled\n" in result.stdout
    assert '{"apiKeys":[]}' in result.stdout and '{"apiKeys": []}' in result.stdout
