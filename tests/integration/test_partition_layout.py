"""The partition count and tag layout are recorded with the data and checked at start."""

from __future__ import annotations

import dataclasses

import pytest
import redis

from keyledger.adapters.keyspace import Keyspace
from keyledger.bootstrap import check_partitions
from keyledger.config import ConfigError


def test_the_first_start_records_the_count_and_the_layout(
    redis_client: redis.Redis, namespace: str
) -> None:
    keys = Keyspace(namespace, 16)
    check_partitions(redis_client, keys)
    assert redis_client.hgetall(keys.meta()) == {"partitions": "16", "tags": "spread"}
    check_partitions(redis_client, keys)  # and the next start agrees


def test_data_written_before_layouts_were_recorded_needs_the_legacy_tags(
    redis_client: redis.Redis, namespace: str
) -> None:
    keys = Keyspace(namespace, 16)
    redis_client.hset(keys.meta(), "partitions", 16)  # as keyledger before clusters left it
    with pytest.raises(ConfigError, match="KEYLEDGER_PARTITION_TAGS=legacy"):
        check_partitions(redis_client, keys)
    check_partitions(redis_client, dataclasses.replace(keys, tags="legacy"))


def test_another_partition_count_is_refused(redis_client: redis.Redis, namespace: str) -> None:
    check_partitions(redis_client, Keyspace(namespace, 16))
    with pytest.raises(ConfigError, match="KEYLEDGER_PARTITIONS=24"):
        check_partitions(redis_client, Keyspace(namespace, 24))
