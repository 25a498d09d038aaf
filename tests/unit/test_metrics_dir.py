"""``keyledger run`` keeps its web workers' metric files in a directory of its own: a
second run in the same directory (with its own REDIS_URL) emptied the first one's, or
failed at start with FileExistsError when both made the directory at once."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from keyledger.cli.processes import METRICS_DIR, fresh_metrics_dir, release_metrics_dir


def test_two_runs_in_one_directory_keep_their_own_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    other = subprocess.Popen(["sleep", "60"])  # another run, still going
    try:
        theirs = METRICS_DIR / f"run-{other.pid}"
        theirs.mkdir(parents=True)
        (theirs / "counter_1.db").write_bytes(b"theirs")
        ours = fresh_metrics_dir()
        assert ours == METRICS_DIR / f"run-{os.getpid()}"
        assert ours.is_dir() and not any(ours.iterdir())
        assert (theirs / "counter_1.db").read_bytes() == b"theirs"
        release_metrics_dir(ours)
        assert not ours.exists() and theirs.exists()
    finally:
        other.kill()
        other.wait()
    again = fresh_metrics_dir()  # the other run is gone: what it left goes
    assert not theirs.exists()
    release_metrics_dir(again)
    assert not METRICS_DIR.exists()


def test_a_run_starts_when_its_directory_was_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    left = METRICS_DIR / f"run-{os.getpid()}"  # this pid's, from a run that was killed
    left.mkdir(parents=True)
    (left / "gauge_1.db").write_bytes(b"stale")
    (METRICS_DIR / "counter_2.db").write_bytes(b"the old layout")
    ours = fresh_metrics_dir()
    assert ours == left and not any(ours.iterdir())
    assert [p.name for p in METRICS_DIR.iterdir()] == [ours.name]
