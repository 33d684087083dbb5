"""ICE configuration for the bridge and the agent: servers, advertised addresses, and
which remote candidates are accepted.

aiortc's defaults do not fit a closed provincial network (a public STUN
server, every local interface advertised, mDNS resolution by multicast), so
all three are settings here, with no public default."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

_TURN_CREDENTIALS = re.compile(r"^(turns?):([^:@]+):([^@]+)@(.+)$")


class IcePolicyError(ValueError):
    """An ICE server URI or address in the settings is invalid."""


def ice_servers(uris: Iterable[str]) -> list[RTCIceServer]:
    """RTCIceServer objects from URIs: `stun:host:port`, `turn:user:password@host:port`."""
    servers = []
    for uri in uris:
        match = _TURN_CREDENTIALS.match(uri)
        if match:
            scheme, user, password, rest = match.groups()
            servers.append(RTCIceServer(urls=f"{scheme}:{rest}", username=user,
                                        credential=password))
        elif uri.startswith(("stun:", "stuns:", "turn:", "turns:")):
            servers.append(RTCIceServer(urls=uri))
        else:
            raise IcePolicyError(f"ICE server {uri!r} must start with stun: or turn:")
    return servers


def rtc_configuration(uris: Iterable[str]) -> RTCConfiguration:
    """An explicit configuration: never aiortc's default public STUN server."""
    return RTCConfiguration(iceServers=ice_servers(uris))


def restrict_host_addresses(addresses: Sequence[str]) -> None:
    """Advertise only `addresses` as host candidates (process-wide).

    aioice enumerates every interface (and skips 127.0.0.1) with no option to
    choose: we replace that one function. Empty `addresses` keeps aioice's
    own enumeration. A public address of a 1:1 NAT goes here too."""
    if not addresses:
        return
    chosen = [str(ipaddress.ip_address(a)) for a in addresses]

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def allowed_networks(addresses: Sequence[str]) -> list[Network]:
    """The networks remote candidates must come from: loopback when we only
    advertise loopback (tests, benchmarks), otherwise anywhere."""
    if addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses):
        return [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    return []


def filter_candidates(sdp: str, networks: Sequence[Network]) -> str:
    """Drop remote candidates we must not use: mDNS names (resolving them means
    multicast) and, when `networks` is given, addresses outside it."""
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            address = parts[4] if len(parts) > 4 else ""
            if address.endswith(".local"):
                continue
            if networks:
                try:
                    ip = ipaddress.ip_address(address)
                except ValueError:
                    continue
                if not any(ip in network for network in networks):
                    continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"
