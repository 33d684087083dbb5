"""What monitoring reads of the SIP side of the bridge without importing the bridge: the
gateway's status (bridge/sip/janus_gateway.py) and the SIP rooms' OPTIONS pings
(bridge/sip/options_probe.py), through probes the bridge's wiring stores in the app
(`SIP_GATEWAY_PROBE`, `SIP_SITES_PROBE`; absent when no gateway is configured)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web


@dataclass(frozen=True)
class GatewayStatus:
    """The gateway as monitoring sees it."""

    reachable: bool  # a session with Janus is up
    registered: bool  # registered with the proxy (calls into the bridge work)
    legs: int  # calls up now
    registering: bool = False  # registration is configured (else `registered` means nothing)


class SipGatewayProbe(Protocol):
    """Anything that tells the gateway's status now."""

    @property
    def status(self) -> GatewayStatus:
        """The status now."""
        ...


SIP_GATEWAY_PROBE = web.AppKey("sip_gateway_probe", SipGatewayProbe)


@dataclass(frozen=True)
class SiteReach:
    """A SIP room's last OPTIONS ping."""

    up: bool  # the room answered
    rtt_seconds: float | None  # the round trip of that answer (None: no answer)
    last_seen: float | None  # Unix time of its last answer (None: never)
    code: int | None  # the SIP answer (None: none in time)


class SipSitesProbe(Protocol):
    """Anything that tells the SIP rooms' last pings."""

    def sites(self) -> Mapping[str, SiteReach]:
        """The last ping of each SIP endpoint, by roster code."""
        ...


SIP_SITES_PROBE = web.AppKey("sip_sites_probe", SipSitesProbe)
