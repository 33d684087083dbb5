"""Sending the bridge's RTCP (and retransmissions) on the same direct path as its RTP
(private API, pinned to aiortc 1.16.0 / aioice 0.13.0).

Why: everything aiortc sends on a connection that is not our forwarded RTP
goes through `RTCDtlsTransport._send_rtp`: sender reports and BYE
(`RTCRtpSender._run_rtcp`), receiver reports, REMB, NACK and PLI
(`RTCRtpReceiver._send_rtcp`, also used by `media_tap.VideoIngest`), and the
forwarder's NACK answers (`RtpForwarder._retransmit`). aiortc protects the
packet and then awaits four coroutines per packet (its ICE transport's
`_send`, aioice's `Connection.send` and `sendto`, the protocol's `send_data`)
before the datagram transport's `sendto`: "aioice's chain for RTCP", 3.8 % of
the bridge's samples at 31 sites (docs/performance.md), about 1.5 % of a core,
for a few hundred packets a second.

What: `install` replaces `_send_rtp` on one DTLS transport instance (the
callers look it up on the instance at every send) by `DirectSend`, which does
what aiortc does (the connected-state check and its `ConnectionError`,
`protect_rtcp` or `protect` with the transport's SRTP session, called straight
into libsrtp by `bridge/srtp_calls.py`, the transport's sent bytes/packets
counters that `getStats()` reports) but sends with the
nominated candidate pair's datagram transport `sendto` in the caller's call,
exactly as `rtp_forwarder.RtpForwarder` sends RTP. It is an `async` function
only because every caller awaits it: it never suspends, so the caller's
coroutine does not yield either. Where the RTP fast path would not send
directly, neither does this: no nominated pair yet, or a pair whose protocol
is not aioice's UDP `StunProtocol` (then aiortc's own method sends it). A TURN
relayed pair is sent directly, as the forwarder does: its `TurnTransport.sendto`
wraps the datagram for the server itself.

Relies on (checked by `tests/test_rtcp_sender.py`, which fails loudly when an
upgrade moves them): `RTCDtlsTransport._send_rtp` being a plain coroutine
method looked up through the instance by `RTCRtpSender._send_rtcp`,
`RTCRtpSender._retransmit` and `RTCRtpReceiver._send_rtcp`; its body (state
check, `is_rtcp`, `_tx_srtp.protect_rtcp` / `protect`, the name-mangled
`__tx_bytes` / `__tx_packets` counters); aioice's nominated pair of component 1
and `StunProtocol.send_data` being the transport's `sendto`.

Installed by the bridge's forwarders only (`RtpForwarder`, once DTLS is up);
the endpoint agent (`bridge/agent/`) keeps aiortc's path."""

from __future__ import annotations

from typing import Any

from aioice.ice import StunProtocol
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import is_rtcp

from bridge import srtp_calls

ATTRIBUTE = "_send_rtp"  # the RTCDtlsTransport method replaced per instance


class DirectSend:
    """One DTLS transport's `_send_rtp`: protect and send at once on the nominated pair."""

    def __init__(self, dtls: Any) -> None:
        self._dtls = dtls
        self._aiortc = dtls._send_rtp  # aiortc's own (bound) method, for the fallback
        self._pair: Any = None
        self._sendto: Any = None
        self.direct = 0  # packets sent on the direct path
        self.fallback = 0  # packets left to aiortc's path

    async def __call__(self, data: bytes) -> None:
        """Send one RTCP (compound) or RTP packet, as `RTCDtlsTransport._send_rtp` does."""
        dtls = self._dtls
        if dtls._state != DtlsState.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        pair = dtls.transport._connection._nominated.get(1)
        if pair is not self._pair:
            self._route(pair)
        sendto = self._sendto
        if sendto is None:
            self.fallback += 1
            await self._aiortc(data)
            return
        srtp = srtp_calls.calls(dtls._tx_srtp)
        data = srtp.protect_rtcp(data) if is_rtcp(data) else srtp.protect(data)
        sendto(data, pair.remote_addr)
        # The counters aiortc's transport statistics report (bytesSent, packetsSent).
        dtls._RTCDtlsTransport__tx_bytes += len(data)
        dtls._RTCDtlsTransport__tx_packets += 1
        self.direct += 1

    def _route(self, pair: Any) -> None:
        # As RtpForwarder._route decides: aioice's UDP protocol (host, server-reflexive or
        # TURN relay) sends synchronously through its transport; anything else, or no
        # pair yet, goes aiortc's way (which raises aiortc's error when there is no pair).
        self._pair = pair
        self._sendto = (pair.protocol.transport.sendto
                        if pair is not None and type(pair.protocol) is StunProtocol
                        else None)


def install(dtls: Any) -> DirectSend | None:
    """Send `dtls`'s RTCP (and any RTP aiortc sends through it) directly from now on.

    Call once DTLS is connected (the SRTP session exists); calling again is harmless.
    Returns the installed sender, or None when `dtls` is not ready."""
    current = dtls.__dict__.get(ATTRIBUTE)
    if isinstance(current, DirectSend):
        return current
    if dtls._tx_srtp is None or dtls._state != DtlsState.CONNECTED:
        return None
    sender = DirectSend(dtls)
    dtls.__dict__[ATTRIBUTE] = sender
    return sender


def installed(dtls: Any) -> DirectSend | None:
    """The direct sender installed on `dtls`, if any."""
    current = dtls.__dict__.get(ATTRIBUTE)
    return current if isinstance(current, DirectSend) else None
