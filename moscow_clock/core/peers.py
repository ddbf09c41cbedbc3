"""Who a connection's peer is: a trusted proxy or not, and the group of
addresses a per-address limit counts it in.

Pure: the server asks with the peer address a socket reports (or, behind a
trusted proxy, the one `client_address` finds in its forwarding headers).
The list of trusted proxies has uvicorn's `forwarded_allow_ips` form: IPs
and CIDR networks, comma-separated, `*` for every peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

type Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# An IPv6 client usually holds a whole /64 (SLAAC, privacy addresses): a
# per-address limit counts the /64, or one host would pass as millions.
IPV6_GROUP_PREFIX = 64


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()
    everyone: bool = False

    @classmethod
    def parse(cls, raw: str) -> TrustedProxies:
        """`10.0.0.1, 10.1.0.0/16, ::1` or `*`; ValueError names a bad item."""
        networks: list[Network] = []
        everyone = False
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            if item == "*":
                everyone = True
                continue
            try:
                network = ipaddress.ip_network(item, strict=False)
                # `::ffff:10.0.0.1` as a dual-stack socket logs it: the peer
                # is compared as IPv4 (_address), so the network is too.
                if isinstance(network, ipaddress.IPv6Network):
                    mapped = network.network_address.ipv4_mapped
                    if mapped is not None and network.prefixlen >= 96:
                        network = ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
                networks.append(network)
            except ValueError:
                raise ValueError(item) from None
        return cls(tuple(networks), everyone)

    def __bool__(self) -> bool:
        return self.everyone or bool(self.networks)

    def trusts(self, host: str | None) -> bool:
        """`host` (a peer's IP, as a socket reports it) is a trusted proxy."""
        if self.everyone:
            return True
        address = _address(host)
        return address is not None and any(address in network for network in self.networks)

    def client_address(self, peer: str | None, forwarded_for: Iterable[str]) -> str | None:
        """The client's address: `peer` unless it is a trusted proxy, then
        the nearest address in the `X-Forwarded-For` chain (each value
        comma-separated, in header order) that is not one (uvicorn's rule)."""
        if not self.trusts(peer):
            return peer
        chain = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        for hop in reversed([hop for hop in chain if hop]):
            if not self.trusts(hop):
                return hop
        return chain[0] if chain else peer


NO_PROXIES = TrustedProxies()
# uvicorn's default: the machine's own loopback (a sidecar proxy, a local
# health check, a benchmark's load generator) is not a crowd of strangers.
LOOPBACK = TrustedProxies.parse("127.0.0.1")


def group_of(host: str | None) -> str | None:
    """The key a per-address limit counts `host` under: the IPv4 address,
    or the IPv6 /64 (an IPv4-mapped IPv6 address is its IPv4 one); None
    for a peer without an IP address (a Unix socket)."""
    if host and ":" not in host:
        return host  # IPv4, as sockets report it (the common case: no parsing)
    address = _address(host)
    if address is None:
        return None
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    network = ipaddress.IPv6Network((address, IPV6_GROUP_PREFIX), strict=False)
    return str(network)


def _address(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
