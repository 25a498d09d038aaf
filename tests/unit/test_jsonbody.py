"""``strict_loads``: JSON with a repeated key in any object is refused."""

from __future__ import annotations

import pytest

from keyledger.web.jsonbody import DuplicateKey, strict_loads


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"role": "Member", "role": "Owner"}', "role"),
        ('{"a": {"b": 1, "b": 2}}', "b"),
        ('[{"token": "x"}, {"token": "y", "token": "z"}]', "token"),
        ('{"a": [[{"deep": 1, "deep": 1}]]}', "deep"),
        ('{"r\\u006fle": 1, "role": 2}', "role"),  # the same key, escaped once
    ],
)
def test_a_repeated_key_at_any_depth_is_refused(text: str, key: str) -> None:
    with pytest.raises(DuplicateKey) as raised:
        strict_loads(text)
    assert raised.value.key == key
    assert isinstance(raised.value, ValueError)


def test_json_without_repeated_keys_loads_as_usual() -> None:
    text = '{"a": {"b": 1}, "b": [{"a": 2}, {"a": 3}], "c": null}'
    assert strict_loads(text) == {"a": {"b": 1}, "b": [{"a": 2}, {"a": 3}], "c": None}
    assert strict_loads(b'["x", 1]') == ["x", 1]
