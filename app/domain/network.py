"""Source-address and subnet rules, shared by validation and the source-IP policy."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_CIDR_LENGTH = 64  # "ffff:...:ffff/128" is 43 characters
MATCH_ALL = frozenset({"0.0.0.0/0", "::/0"})
IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


class InvalidSubnet(ValueError):
    pass


def canonical_subnet(text: str, *, allow_any: bool = False) -> str:
    """Validate a CIDR and return its canonical form (``10.2.5.0/24``, ``2001:db8::/32``).

    Host bits set, hostmask forms, leading zeros and zone ids are errors;
    ``0.0.0.0/0`` and ``::/0`` (the whole internet) only when ``allow_any``.
    """
    if not isinstance(text, str) or not text or len(text) > MAX_CIDR_LENGTH:
        raise InvalidSubnet("must be a CIDR subnet such as 10.2.5.0/24")
    if "/" not in text or "%" in text or text.strip() != text:
        raise InvalidSubnet("must be a CIDR subnet such as 10.2.5.0/24 (address/prefix length)")
    address, _, prefix = text.partition("/")
    if not prefix.isdigit() or not prefix.isascii() or (len(prefix) > 1 and prefix[0] == "0"):
        raise InvalidSubnet("prefix length must be a plain number such as /24")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise InvalidSubnet(_explain(str(exc))) from None
    if str(network.network_address) != address and _is_v4(address):
        raise InvalidSubnet("address is not in canonical dotted form")
    if network.version == 6 and network.subnet_of(IPV4_MAPPED):
        raise InvalidSubnet("IPv4-mapped subnets are not accepted: give the IPv4 form (10.0.0.0/8)")
    canonical = str(network)
    if canonical in MATCH_ALL and not allow_any:
        raise InvalidSubnet(f"{canonical} allows every address; it is refused")
    return canonical


def whole_family_covered(subnets: Iterable[str]) -> str | None:
    """``0.0.0.0/0`` or ``::/0`` when ``subnets`` (canonical CIDRs) together cover every
    address of that family (``0.0.0.0/1`` with ``128.0.0.0/1``), else None: the same
    "no restriction while looking like one" that ``canonical_subnet`` refuses alone.

    IPv4-mapped IPv6 subnets are refused by ``canonical_subnet``, so IPv6 subnets never
    cover IPv4 clients (which are matched as IPv4)."""
    networks = [ipaddress.ip_network(subnet) for subnet in subnets]
    for version, everything in ((4, "0.0.0.0/0"), (6, "::/0")):
        family = [n for n in networks if n.version == version]
        collapsed = list(ipaddress.collapse_addresses(family))  # type: ignore[type-var]
        if [str(n) for n in collapsed] == [everything]:
            return everything
    return None


def _is_v4(address: str) -> bool:
    return ":" not in address


def _explain(message: str) -> str:
    if "host bits set" in message:
        return "host bits are set: use the network address (for example 10.2.5.0/24)"
    return "must be a CIDR subnet such as 10.2.5.0/24"


@functools.lru_cache(maxsize=4_096)
def client_address(text: str | None) -> IPAddress | None:
    """Parse the peer address; IPv4-mapped IPv6 becomes IPv4; scoped or junk is ``None``.

    Remembered per process for the most recent 4,096 addresses (addresses are immutable):
    a key with an allow list checks the caller's address at every request."""
    if not text or len(text) > 64 or "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_allowed(address: IPAddress | None, subnets: Iterable[str]) -> bool:
    """True when ``address`` lies in one of ``subnets`` (canonical CIDR strings)."""
    if address is None:
        return False
    for subnet in subnets:
        network = parsed_network(subnet)
        if network.version == address.version and address in network:
            return True
    return False


@functools.lru_cache(maxsize=65_536)
def parsed_network(subnet: str) -> IPNetwork:
    """A canonical CIDR string parsed once per process (networks are immutable): the
    source-IP policy checks a key's allow list at every request, and parsing it each time
    cost a key with subnets a fifth of its warm decision."""
    return ipaddress.ip_network(subnet)
