"""What monitoring reads of the SIP gateway (bridge/sip/janus_gateway.py) without
importing the bridge: the gateway's status, through a probe the composition root
stores in the app (`SIP_GATEWAY_PROBE`; absent when no gateway is configured)."""

from __future__ import annotations

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
