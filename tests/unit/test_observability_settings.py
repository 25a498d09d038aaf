"""The observability settings read from the environment."""

from __future__ import annotations

import pytest

from keyledger.config import ConfigError, Settings

BASE = {"REDIS_URL": "redis://127.0.0.1:1/0"}


def test_the_defaults_are_plain_logs_metrics_on_and_no_extra_ports() -> None:
    settings = Settings.from_env(BASE)
    assert settings.log_format == "plain"
    assert settings.metrics is True
    assert settings.ready_max_lag_ms == 5000
    assert settings.projector_metrics_port is None
    assert settings.worker_metrics_port is None


def test_each_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            **BASE,
            "KEYLEDGER_LOG_FORMAT": "JSON",
            "KEYLEDGER_METRICS": "0",
            "KEYLEDGER_READY_MAX_LAG_MS": "250",
            "KEYLEDGER_PROJECTOR_METRICS_PORT": "9101",
            "KEYLEDGER_WORKER_METRICS_PORT": "9102",
        }
    )
    assert (settings.log_format, settings.metrics, settings.ready_max_lag_ms) == (
        "json",
        False,
        250,
    )
    assert (settings.projector_metrics_port, settings.worker_metrics_port) == (9101, 9102)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("KEYLEDGER_LOG_FORMAT", "xml", "KEYLEDGER_LOG_FORMAT"),
        ("KEYLEDGER_READY_MAX_LAG_MS", "-1", "KEYLEDGER_READY_MAX_LAG_MS"),
        ("KEYLEDGER_READY_MAX_LAG_MS", "soon", "bad setting"),
        ("KEYLEDGER_PROJECTOR_METRICS_PORT", "70000", "KEYLEDGER_PROJECTOR_METRICS_PORT"),
        ("KEYLEDGER_WORKER_METRICS_PORT", "0", "KEYLEDGER_WORKER_METRICS_PORT"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**BASE, name: value})
