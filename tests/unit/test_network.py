"""Subnet validation and source-address matching."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyledger.domain.network import (
    MAX_CIDR_LENGTH,
    InvalidSubnet,
    address_allowed,
    canonical_subnet,
    client_address,
)

# -- canonical_subnet -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_text", "canonical"),
    [
        ("10.2.5.0/24", "10.2.5.0/24"),
        ("192.0.2.7/32", "192.0.2.7/32"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("2001:DB8::/32", "2001:db8::/32"),
        ("2001:0db8:0000::/48", "2001:db8::/48"),
        ("2001:db8:0:0:0:0:0:1/128", "2001:db8::1/128"),
        ("fe80::/10", "fe80::/10"),
    ],
)
def test_canonical_subnet_returns_the_canonical_form(given_text: str, canonical: str) -> None:
    assert canonical_subnet(given_text) == canonical


def test_canonical_subnet_accepts_single_digit_prefix() -> None:
    assert canonical_subnet("10.0.0.0/8") == "10.0.0.0/8"


def test_canonical_subnet_rejects_host_bits_with_an_explanation() -> None:
    with pytest.raises(InvalidSubnet, match="host bits"):
        canonical_subnet("10.2.5.7/24")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("10.2.5.7/24", id="v4 host bits"),
        pytest.param("2001:db8::1/32", id="v6 host bits"),
        pytest.param("10.0.0.0/08", id="leading zero prefix"),
        pytest.param("10.0.0.0/008", id="two leading zeros"),
        pytest.param("10.0.0.0/0.255.255.255", id="hostmask"),
        pytest.param("10.0.0.0/255.0.0.0", id="netmask"),
        pytest.param("10.0.0.0", id="no prefix v4"),
        pytest.param("2001:db8::", id="no prefix v6"),
        pytest.param("10.0.0.0/", id="empty prefix"),
        pytest.param("/24", id="empty address"),
        pytest.param("10.0.0.0/33", id="v4 prefix too long"),
        pytest.param("2001:db8::/129", id="v6 prefix too long"),
        pytest.param("10.0.0.0/-8", id="negative prefix"),
        pytest.param("10.0.0.0/+8", id="signed prefix"),
        pytest.param("10.0.0.0/8/8", id="two prefixes"),
        pytest.param("10.0.0.0/\u0668", id="non-ascii digit prefix"),
        pytest.param("010.0.0.0/8", id="leading zero octet"),
        pytest.param("10.0.0/24", id="three octets"),
        pytest.param("10.0.0.0.0/24", id="five octets"),
        pytest.param("256.0.0.0/8", id="octet out of range"),
        pytest.param("fe80::%eth0/64", id="zone id"),
        pytest.param("fe80::%25eth0/64", id="encoded zone id"),
        pytest.param(" 10.0.0.0/8", id="leading space"),
        pytest.param("10.0.0.0/8 ", id="trailing space"),
        pytest.param("10.0.0.0/8\n", id="trailing newline"),
        pytest.param("10.0.0.0 /8", id="inner space"),
        pytest.param("10.0.0.0/ 8", id="space before prefix"),
        pytest.param("\t10.0.0.0/8", id="tab"),
        pytest.param("", id="empty"),
        pytest.param("/", id="slash"),
        pytest.param("any", id="word"),
        pytest.param("1" * (MAX_CIDR_LENGTH + 1), id="oversized"),
        pytest.param("2001:db8::/32" + " " * MAX_CIDR_LENGTH, id="oversized with padding"),
        pytest.param("0" * 60 + "/8", id="long junk"),
    ],
)
def test_canonical_subnet_rejects(text: str) -> None:
    with pytest.raises(InvalidSubnet):
        canonical_subnet(text)


@pytest.mark.parametrize("value", [None, 10, b"10.0.0.0/8", ["10.0.0.0/8"]])
def test_canonical_subnet_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidSubnet):
        canonical_subnet(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["0.0.0.0/0", "::/0", "0::/0", "0:0:0:0:0:0:0:0/0"])
def test_canonical_subnet_refuses_the_whole_internet_by_default(text: str) -> None:
    with pytest.raises(InvalidSubnet, match="every address"):
        canonical_subnet(text)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("0.0.0.0/0", "0.0.0.0/0"), ("::/0", "::/0"), ("0:0:0:0:0:0:0:0/0", "::/0")],
)
def test_canonical_subnet_accepts_the_whole_internet_when_allowed(
    text: str, canonical: str
) -> None:
    assert canonical_subnet(text, allow_any=True) == canonical


def test_canonical_subnet_accepts_half_the_internet_without_allow_any() -> None:
    assert canonical_subnet("0.0.0.0/1") == "0.0.0.0/1"


def test_invalid_subnet_is_a_value_error() -> None:
    assert issubclass(InvalidSubnet, ValueError)


def test_an_ipv4_mapped_subnet_is_refused_naming_the_ipv4_form() -> None:
    """Clients' IPv4-mapped addresses are matched as IPv4 (client_address), so a mapped
    subnet could never match anyone: it is refused with the form to give instead."""
    with pytest.raises(InvalidSubnet, match="IPv4-mapped"):
        canonical_subnet("::ffff:10.0.0.0/104")


def test_an_ipv4_mapped_client_matches_the_ipv4_subnet() -> None:
    for source in ("10.0.0.1", "::ffff:10.0.0.1", "::ffff:a00:1"):
        assert address_allowed(client_address(source), ["10.0.0.0/8"]), source


# -- client_address ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("10.0.0.1", ipaddress.IPv4Address("10.0.0.1")),
        ("2001:db8::1", ipaddress.IPv6Address("2001:db8::1")),
        ("2001:DB8::1", ipaddress.IPv6Address("2001:db8::1")),
        ("::1", ipaddress.IPv6Address("::1")),
    ],
)
def test_client_address_parses_ipv4_and_ipv6(text: str, address: object) -> None:
    assert client_address(text) == address


@pytest.mark.parametrize(
    "text", ["::ffff:10.0.0.1", "::ffff:a00:1", "0:0:0:0:0:ffff:0a00:0001", "::FFFF:10.0.0.1"]
)
def test_client_address_maps_ipv4_mapped_ipv6_to_ipv4(text: str) -> None:
    address = client_address(text)
    assert address == ipaddress.IPv4Address("10.0.0.1")
    assert address is not None and address.version == 4


def test_client_address_keeps_ipv4_compatible_ipv6_as_ipv6() -> None:
    assert client_address("::10.0.0.1") == ipaddress.IPv6Address("::a00:1")


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "fe80::1%eth0",
        "fe80::1%1",
        "::ffff:10.0.0.1%eth0",
        "not-an-ip",
        "10.0.0.256",
        "010.0.0.1",
        "10.0.0.1/32",
        " 10.0.0.1",
        "10.0.0.1\n",
        "10.0.0.1:8080",
        "[2001:db8::1]",
        "1" * 65,
        "\u0661\u0660.0.0.1",
    ],
)
def test_client_address_returns_none_for_scoped_or_junk(text: str | None) -> None:
    assert client_address(text) is None


# -- address_allowed --------------------------------------------------------------------


def test_address_inside_a_subnet_is_allowed() -> None:
    assert address_allowed(ipaddress.ip_address("10.2.5.7"), ["10.2.5.0/24"])


def test_address_outside_every_subnet_is_not_allowed() -> None:
    assert not address_allowed(ipaddress.ip_address("10.2.6.7"), ["10.2.5.0/24", "192.0.2.0/24"])


def test_address_in_any_of_several_subnets_is_allowed() -> None:
    assert address_allowed(ipaddress.ip_address("192.0.2.9"), ["10.2.5.0/24", "192.0.2.0/24"])


def test_no_address_is_never_allowed() -> None:
    assert not address_allowed(None, ["10.0.0.0/8"])


def test_empty_subnet_list_allows_nothing() -> None:
    assert not address_allowed(ipaddress.ip_address("10.0.0.1"), [])


def test_ipv4_address_never_matches_an_ipv6_subnet() -> None:
    assert not address_allowed(ipaddress.ip_address("10.0.0.1"), ["::/1"])


def test_ipv6_address_never_matches_an_ipv4_subnet() -> None:
    assert not address_allowed(ipaddress.ip_address("::1"), ["0.0.0.0/1", "128.0.0.0/1"])


def test_network_and_broadcast_addresses_are_inside_their_subnet() -> None:
    subnet = ["10.2.5.0/24"]
    assert address_allowed(ipaddress.ip_address("10.2.5.0"), subnet)
    assert address_allowed(ipaddress.ip_address("10.2.5.255"), subnet)


# -- properties -------------------------------------------------------------------------


@st.composite
def networks(draw: st.DrawFn, version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    bits = 32 if version == 4 else 128
    address = draw(st.ip_addresses(v=version))
    prefix = draw(st.integers(min_value=0, max_value=bits))
    return ipaddress.ip_network((address, prefix), strict=False)


@st.composite
def address_and_network(draw: st.DrawFn) -> tuple:
    version = draw(st.sampled_from([4, 6]))
    network = draw(networks(version))
    inside = draw(st.booleans())
    if inside:
        offset = draw(st.integers(min_value=0, max_value=network.num_addresses - 1))
        address = network.network_address + offset
    else:
        address = draw(st.ip_addresses(v=version))
    return address, network


@given(address_and_network())
def test_address_allowed_agrees_with_ipaddress_membership(pair: tuple) -> None:
    address, network = pair
    assert address_allowed(address, [str(network)]) == (address in network)


@given(st.ip_addresses(v=4), networks(4))
def test_ipv4_mapped_source_is_allowed_exactly_when_its_ipv4_address_is(
    address: ipaddress.IPv4Address, network: ipaddress.IPv4Network
) -> None:
    mapped = ipaddress.IPv6Address(0xFFFF_0000_0000 | int(address))
    expected = address_allowed(address, [str(network)])
    for text in (str(mapped), mapped.exploded, f"::ffff:{address}"):
        assert address_allowed(client_address(text), [str(network)]) == expected


IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def not_ipv4_mapped(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """IPv4-mapped subnets are refused by canonical_subnet: leave them out."""
    return network.version == 4 or not network.subnet_of(IPV4_MAPPED)


@given((networks(4) | networks(6)).filter(not_ipv4_mapped))
def test_canonical_subnet_accepts_every_canonical_network_unchanged(network) -> None:
    assert canonical_subnet(str(network), allow_any=True) == str(network)


@given((networks(4) | networks(6)).filter(not_ipv4_mapped))
def test_canonical_subnet_is_idempotent(network) -> None:
    once = canonical_subnet(network.exploded, allow_any=True)
    assert canonical_subnet(once, allow_any=True) == once


@given(
    st.text(max_size=80)
    | networks(4).map(str)
    | (networks(6).filter(not_ipv4_mapped).map(lambda n: n.exploded))
)
def test_canonical_subnet_raises_only_invalid_subnet_for_arbitrary_text(text: str) -> None:
    """Arbitrary text and valid networks (so both outcomes are exercised): either the one
    error type, or a canonical form that is its own canonical form."""
    result: str | None
    try:
        result = canonical_subnet(text, allow_any=True)
    except InvalidSubnet:
        result = None
    if result is not None:
        assert canonical_subnet(result, allow_any=True) == result


@given(st.text(max_size=80))
def test_client_address_never_raises_for_arbitrary_text(text: str) -> None:
    result = client_address(text)
    assert result is None or result.version in (4, 6)
