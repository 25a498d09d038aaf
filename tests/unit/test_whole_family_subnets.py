"""Subnets that together allow every address are refused like 0.0.0.0/0 and ::/0
(second review, finding C): {"cidr": "0.0.0.0/1"} then {"cidr": "128.0.0.0/1"}."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyledger.domain import commands as cmd
from keyledger.domain.account import Limits
from keyledger.domain.errors import InvalidInput
from keyledger.domain.network import whole_family_covered
from tests.unit.builders import ACCOUNT_ID, History, registered

KEY = "ci-deploy-key-01"


@pytest.mark.parametrize(
    ("subnets", "covered"),
    [
        (("0.0.0.0/1", "128.0.0.0/1"), "0.0.0.0/0"),
        (("0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"), "0.0.0.0/0"),
        (("0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/2", "10.0.0.0/8"), "0.0.0.0/0"),
        (("::/1", "8000::/1"), "::/0"),
        (("10.0.0.0/8", "::/1", "8000::/1"), "::/0"),
    ],
)
def test_subnets_covering_a_whole_family_are_found(subnets: tuple[str, ...], covered: str) -> None:
    assert whole_family_covered(subnets) == covered


@pytest.mark.parametrize(
    "subnets",
    [
        ("0.0.0.0/1",),
        ("0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3"),  # 224.0.0.0/3 is left out
        ("0.0.0.0/1", "8000::/1"),  # halves of different families
        ("::/1", "8000::/2"),
        (),
    ],
)
def test_subnets_leaving_any_address_out_are_not(subnets: tuple[str, ...]) -> None:
    assert whole_family_covered(subnets) is None


@given(st.integers(min_value=1, max_value=6), st.integers(min_value=0, max_value=63))
def test_every_split_of_the_ipv4_space_is_found_and_any_gap_is_not(
    prefix: int, dropped: int
) -> None:
    pieces = [str(n) for n in ipaddress.ip_network("0.0.0.0/0").subnets(new_prefix=prefix)]
    assert whole_family_covered(pieces) == "0.0.0.0/0"
    assert (
        whole_family_covered(pieces[: dropped % len(pieces)] + pieces[dropped % len(pieces) + 1 :])
        is None
    )


def allow(history: History, cidr: str) -> None:
    history.run(cmd.AllowSourceSubnet(account_id=ACCOUNT_ID, name=KEY, cidr=cidr))


def test_the_subnet_that_completes_a_family_is_refused_naming_the_field() -> None:
    history = registered()
    history.create_key(KEY)
    allow(history, "0.0.0.0/1")
    with pytest.raises(InvalidInput) as caught:
        allow(history, "128.0.0.0/1")
    assert list(caught.value.fields) == ["cidr"]
    assert "every address" in caught.value.fields["cidr"][0]
    assert history.state.key(KEY).allowed_source_ips == ("0.0.0.0/1",)


def test_a_new_key_whose_subnets_cover_a_family_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        registered().create_key(KEY, subnets=("::/1", "8000::/1"))
    assert list(caught.value.fields) == ["allowedSourceIps"]


def test_allow_any_source_accepts_them() -> None:
    history = registered(Limits(allow_match_all_subnets=True))
    history.create_key(KEY, subnets=("::/1", "8000::/1"))
    allow(history, "0.0.0.0/1")
    allow(history, "128.0.0.0/1")
    assert len(history.state.key(KEY).allowed_source_ips) == 4


def test_an_ipv4_mapped_subnet_stays_refused() -> None:
    history = registered()
    history.create_key(KEY)
    with pytest.raises(InvalidInput):
        allow(history, "::ffff:0:0/96")
