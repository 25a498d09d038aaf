"""The client's address: the TCP peer, or what a trusted proxy says it forwarded for.

``X-Forwarded-For`` is something any client can send. It is read only when the
direct peer (``REMOTE_ADDR``) is one of the configured proxies
(``KEYLEDGER_TRUSTED_PROXY_ADDRESSES``), and then as Werkzeug's ``ProxyFix`` reads
it: the address ``KEYLEDGER_TRUSTED_PROXIES`` hops from the right. A request from
any other peer is decided on the peer's own address, header or not, so a client
that reaches keyledger's port directly cannot claim to be inside a key's subnet
or rotate its way past the failure throttle.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

from keyledger.domain.network import IPNetwork, client_address


def peer_is_trusted(remote_addr: str | None, networks: tuple[IPNetwork, ...]) -> bool:
    """True when the direct peer lies in one of ``networks`` (an IPv4-mapped IPv6 peer,
    as a dual-stack socket reports ``127.0.0.1``, counts as its IPv4 address)."""
    address = client_address(remote_addr)
    if address is None:
        return False
    return any(address.version == net.version and address in net for net in networks)


class _AddressChecked:
    """Behind ``ProxyFix``: a forwarded client that is not an IP address (a port, brackets,
    ``unknown``, or anything a local process, trusted by default, chose to write) leaves
    the request with no client address, as a request without a peer address: a key with
    an allow list is refused (403), one without is served, and nothing else is taken
    from the header. It used to become the address as written: logged, kept as the key's
    last source address and in the event log's actor, so a key could be written there.
    A forwarded scheme other than ``http`` or ``https`` is dropped too (it came back in a
    redirect's ``Location``)."""

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if client_address(environ.get("REMOTE_ADDR")) is None:
            environ.pop("REMOTE_ADDR", None)
        if environ.get("wsgi.url_scheme") not in ("http", "https"):
            # X-Forwarded-Proto (read as Werkzeug's ProxyFix does) is only ever one of these.
            original = environ.get("werkzeug.proxy_fix.orig", {})
            environ["wsgi.url_scheme"] = original.get("wsgi.url_scheme", "http")
        return self.app(environ, start_response)


class TrustedProxyFix:
    """WSGI middleware: ``ProxyFix(x_for=hops)`` for requests from trusted peers only."""

    def __init__(self, app: Any, hops: int, trusted: Iterable[str]):
        self.app = app
        self.networks = tuple(ipaddress.ip_network(cidr) for cidr in trusted)
        self.proxied = ProxyFix(_AddressChecked(app), x_for=hops)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if peer_is_trusted(environ.get("REMOTE_ADDR"), self.networks):
            return self.proxied(environ, start_response)
        return self.app(environ, start_response)
