"""The settings of a deployment past one Redis: cluster, queue, replicas, partition tags."""

from __future__ import annotations

import pytest

from keyledger.config import ConfigError, Settings

BASE = {"REDIS_URL": "redis://127.0.0.1:7000/0"}


def test_the_defaults_are_one_redis_no_replicas_and_spread_tags() -> None:
    settings = Settings.from_env(BASE)
    assert settings.redis_cluster is False
    assert settings.queue_redis_url == BASE["REDIS_URL"]
    assert settings.min_replicas == 0 and settings.replica_wait_ms == 1000
    assert settings.partition_tags == "spread" and settings.partitions == 16


def test_each_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            **BASE,
            "KEYLEDGER_REDIS_CLUSTER": "1",
            "KEYLEDGER_QUEUE_URL": "redis://queue:6379/0",
            "KEYLEDGER_MIN_REPLICAS": "1",
            "KEYLEDGER_REPLICA_WAIT_MS": "250",
            "KEYLEDGER_PARTITION_TAGS": "legacy",
        }
    )
    assert settings.redis_cluster is True
    assert settings.queue_redis_url == "redis://queue:6379/0"
    assert settings.min_replicas == 1 and settings.replica_wait_ms == 250
    assert settings.partition_tags == "legacy"


def test_a_cluster_without_a_queue_redis_is_refused_saying_why() -> None:
    with pytest.raises(ConfigError, match=r"KEYLEDGER_QUEUE_URL is required.*RQ does not support"):
        Settings.from_env({**BASE, "KEYLEDGER_REDIS_CLUSTER": "1"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("KEYLEDGER_MIN_REPLICAS", "-1", "KEYLEDGER_MIN_REPLICAS"),
        ("KEYLEDGER_MIN_REPLICAS", "17", "KEYLEDGER_MIN_REPLICAS"),
        ("KEYLEDGER_REPLICA_WAIT_MS", "0", "KEYLEDGER_REPLICA_WAIT_MS"),
        ("KEYLEDGER_PARTITION_TAGS", "braces", "KEYLEDGER_PARTITION_TAGS"),
        ("KEYLEDGER_MIN_REPLICAS", "one", "bad setting"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**BASE, name: value})
