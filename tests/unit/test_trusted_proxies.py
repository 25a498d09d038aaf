"""Whose X-Forwarded-For is believed: only a trusted direct peer's (issue 7, finding 2)."""

from __future__ import annotations

import ipaddress
import re

import pytest

from keyledger.config import DEFAULT_TRUSTED_PROXY_ADDRESSES, ConfigError, Settings
from keyledger.web.proxies import peer_is_trusted

DEFAULT = tuple(ipaddress.ip_network(cidr) for cidr in DEFAULT_TRUSTED_PROXY_ADDRESSES)


def test_by_default_only_the_loopback_addresses_of_a_local_proxy_are_trusted() -> None:
    assert DEFAULT_TRUSTED_PROXY_ADDRESSES == ("127.0.0.1/32", "::1/128")
    assert Settings.from_env({"REDIS_URL": "redis://x"}).trusted_proxy_addresses == (
        "127.0.0.1/32",
        "::1/128",
    )


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "::ffff:7f00:1"])
def test_a_trusted_peer_is_trusted_in_every_spelling(peer: str) -> None:
    assert peer_is_trusted(peer, DEFAULT)


@pytest.mark.parametrize(
    "peer",
    [
        "127.0.0.2",  # another loopback address: not the configured proxy
        "10.2.5.7",
        "::ffff:10.2.5.7",
        "192.0.2.10",
        "2001:db8::1",
        "::2",
        "fe80::1%lo",
        "",
        None,
        "garbage",
        "127.0.0.1:8080",
    ],
)
def test_any_other_peer_is_not(peer: str | None) -> None:
    assert not peer_is_trusted(peer, DEFAULT)


def test_an_ipv4_peer_never_matches_an_ipv6_network_or_the_reverse() -> None:
    v6_only = (ipaddress.ip_network("::/0"),)
    assert not peer_is_trusted("127.0.0.1", v6_only)
    assert not peer_is_trusted("::ffff:127.0.0.1", v6_only)
    assert not peer_is_trusted("::1", (ipaddress.ip_network("0.0.0.0/0"),))


def env(value: str) -> dict[str, str]:
    return {"REDIS_URL": "redis://x", "KEYLEDGER_TRUSTED_PROXY_ADDRESSES": value}


def test_the_setting_takes_a_comma_separated_list_of_cidrs_and_bare_addresses() -> None:
    settings = Settings.from_env(env(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,::1 "))
    assert settings.trusted_proxy_addresses == ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1")


def test_an_empty_setting_trusts_no_peer() -> None:
    assert Settings.from_env(env("")).trusted_proxy_addresses == ()


@pytest.mark.parametrize(
    "value",
    [
        "10.0.0.1/8",  # host bits
        "10.0.0.0/33",
        "not-an-address",
        "10.0.0.0/8,garbage",
        "::ffff:127.0.0.1/128",  # IPv4-mapped: give the IPv4 form
        "10.0.0.0/08",
        "fe80::1%eth0",
        "127.0.0.1/32;10.0.0.0/8",
    ],
)
def test_a_bad_entry_stops_the_start_with_a_config_error_naming_it(value: str) -> None:
    with pytest.raises(ConfigError, match="KEYLEDGER_TRUSTED_PROXY_ADDRESSES"):
        Settings.from_env(env(value))


def test_settings_given_in_code_are_validated_too() -> None:
    with pytest.raises(ConfigError, match=re.escape("'10.0.0.1/8'")):
        Settings(redis_url="redis://x", trusted_proxy_addresses=("10.0.0.1/8",))
