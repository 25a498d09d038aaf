"""The example alert rules (docs/prometheus): valid, firing when they should, and about
metrics keyledger really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.layout import ROOT

RULES = ROOT / "docs" / "prometheus" / "keyledger-alerts.yml"
RULE_TESTS = ROOT / "docs" / "prometheus" / "keyledger-alerts.test.yml"
OPERATORS = ROOT / "docs" / "operators.md"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed: it checks the example alert rules. Install the "
            "Debian package prometheus (make system-deps does) and run the tests again.",
            pytrace=False,
        )
    return found


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules() -> None:
    checked = run(promtool(), "check", "rules", RULES.name, cwd=RULES.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_the_rules_fire_as_their_unit_tests_expect() -> None:
    tested = run(promtool(), "test", "rules", RULE_TESTS.name, cwd=RULES.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_would_catch_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(RULES.read_text().replace("max by (partition)", "max by (partition", 1))
    assert run(promtool(), "check", "rules", str(broken), cwd=tmp_path).returncode != 0


def documented_metrics() -> set[str]:
    """Metric names the "Observing it" section of docs/operators.md documents."""
    text = OPERATORS.read_text()
    assert "\n## Observing it\n" in text, "docs/operators.md has no 'Observing it' section"
    section = text.split("\n## Observing it\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(keyledger_[a-z_]+)", section))


def test_every_rule_is_about_documented_metrics_and_covers_what_the_issue_asks() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    documented = documented_metrics()
    for rule in rules:
        used = set(re.findall(r"keyledger_[a-z_]+", rule["expr"]))
        assert used, rule["alert"]
        assert used <= documented, (rule["alert"], used - documented)
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["annotations"]["summary"]
    text = " ".join(rule["expr"] for rule in rules)
    for needed in (
        "keyledger_projector_lag_seconds",
        "keyledger_partition_halted",
        'status=~"5..",status!="503"',
        'status="503"',
        'result="denied"',
    ):
        assert needed in text
