"""Receiving the sites' media by callback, without aioice's queue (private API, pinned to
aiortc 1.16.0 / aioice 0.13.0).

aioice hands every datagram to its STUN parser first (media fail it with an
exception), then queues it; aiortc's DTLS transport takes it off the queue in
a coroutine, one task step per packet, and awaits the receiver's handler.
Once a connection's DTLS is up, `install` makes the nominated pair's protocol
give SRTP datagrams (first byte 128–191, RFC 7983) straight to
`_receive_srtp`, in the event loop's datagram callback:

- RTP to a tapped receiver (a site's microphone, `media_tap.tap_audio`, or its
  camera, `media_tap.tap_video`), known from its header before SRTP (which
  leaves the header clear): unprotected and parsed in one call into C
  (`bridge/rtp_receive_native.c`: libsrtp with the session's own context,
  then the header as `lean_rtp.parse_packet` reads it, only the audio level
  and abs-send-time of the header extensions decoded; where the module is
  not built, those two steps in Python), then handed to the tap's
  synchronous callback (`media_tap.PACKET_TAP` on the receiver). At 31 sites
  that is about 3,400 packets a second, each of which
  cost aiortc's full parse (every extension decoded in Python), the router's
  lookup and a coroutine object driven to its end. The receiver is the one aiortc's
  `RtpRouter.route_rtp` would choose: its SSRC table gives it and it takes
  the packet's payload type; that lookup has no side effect, so nothing aiortc
  would have learnt is lost. A packet of an SSRC the router does not know yet
  (the first of a stream whose SSRC the SDP did not announce) goes the
  general way below, where the router learns it and the tap still gets it
  (through `_handle_rtp_packet`); so does anything routed to an untapped
  receiver (a SIP room's H.264). Of a tapped receiver's packets aiortc only
  keeps the statistics its receiver reports come from (no jitter buffer, no
  decoder); the mix counts them itself (`audio_engine.ReceiveStats`);
- other RTP: unprotected with the transport's SRTP session, parsed, routed to its
  receiver as aiortc routes it; the receiver's handler (our tap, or aiortc's
  own) runs at once and, as it never has to wait in practice (sending RTCP is
  synchronous underneath), finishes there; if it ever does wait, a task
  finishes it (`inline_coroutine.run_now`);
- RTCP, DTLS, STUN: the usual way (aioice's parser and queue, aiortc's
  coroutine), so keyframe requests, NACKs, receiver reports and consent
  checks work as before.

The hook is a class-level wrapper of `StunProtocol.datagram_received` that
looks for a per-protocol handler: protocols without one (the agent's, STUN
and TURN traffic) behave exactly as aioice's. A packet that does not parse is
dropped, as aiortc drops it; nothing raises into the event loop's datagram
callback. `tests/test_datagram_tap.py` checks the names and shapes relied upon
(aiortc's `RTCDtlsTransport._rx_srtp`, `_rtp_header_extensions_map`,
`_rtp_router` and the router's `ssrc_table` and `payload_type_table`)."""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aioice.ice import StunProtocol
from aiortc.rtp import RtpPacket, is_rtcp

from bridge import srtp_calls
from bridge.inline_coroutine import run_now
from bridge.lean_rtp import extension_ids, packet_of, parse_packet
from bridge.media_tap import PACKET_TAP, ntp_now_ms

try:
    from bridge import rtp_receive_native
except ImportError:  # not built (no C compiler at install): unprotected and parsed in Python
    rtp_receive_native = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

HANDLER = "_vcbridge_srtp_handler"  # attribute set on a StunProtocol instance

_original_datagram_received = StunProtocol.datagram_received


def _datagram_received(self: StunProtocol, data: bytes | str, addr: tuple[Any, ...]) -> None:
    handler: Callable[[bytes], bool] | None = self.__dict__.get(HANDLER)
    if (handler is not None and isinstance(data, bytes) and data and 127 < data[0] < 192
            and handler(data)):
        return
    _original_datagram_received(self, data, addr)


StunProtocol.datagram_received = _datagram_received  # type: ignore[method-assign]


def install(dtls: Any) -> None:
    """Receive `dtls`'s SRTP media by callback from now on (DTLS must be connected)."""
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None or dtls._rx_srtp is None:
        return
    pair.protocol.__dict__[HANDLER] = lambda data: _receive_srtp(dtls, data)


def _receive_srtp(dtls: Any, data: bytes) -> bool:
    """Handle one SRTP datagram; False leaves it to aioice/aiortc (RTCP)."""
    if is_rtcp(data):
        return False
    # The RTP header is not encrypted: a tapped receiver's packet is known before SRTP.
    on_packet = _tap_of(dtls, data)
    if on_packet is not None:
        packet = _read_tapped(dtls, data)
        if packet is not None:
            try:
                on_packet(packet)
            except Exception:
                log.exception("receiving an RTP packet failed")
        return True
    try:
        clear = srtp_calls.calls(dtls._rx_srtp).unprotect(data)
        packet = RtpPacket.parse(clear, dtls._rtp_header_extensions_map)
    except (pylibsrtp.Error, ValueError, struct.error):
        # As aiortc: dropped (struct.error: a known extension of the wrong size).
        return True
    receiver = dtls._rtp_router.route_rtp(packet)
    if receiver is not None:
        run_now(receiver._handle_rtp_packet(packet, arrival_time_ms=ntp_now_ms()))
    return True


def _tap_of(dtls: Any, data: bytes) -> Callable[[RtpPacket], None] | None:
    """The tap of the receiver an RTP packet goes to, if the router knows its SSRC and
    the receiver is tapped; None: go the general way."""
    if len(data) < 12:
        return None
    router = dtls._rtp_router
    receiver = router.ssrc_table.get(int.from_bytes(data[8:12], "big"))
    if receiver is None:
        return None
    on_packet: Callable[[RtpPacket], None] | None = receiver.__dict__.get(PACKET_TAP)
    # As route_rtp: a known SSRC goes to its receiver only if that takes the payload type.
    if on_packet is None or receiver not in router.payload_type_table.get(data[1] & 0x7F, ()):
        return None
    return on_packet


def _read_tapped(dtls: Any, data: bytes) -> RtpPacket | None:
    """A tapped receiver's SRTP packet, unprotected and parsed (only the audio level and
    abs-send-time of its extensions); None: dropped, as aiortc drops it."""
    calls = srtp_calls.calls(dtls._rx_srtp)
    ids = extension_ids(dtls._rtp_header_extensions_map)
    try:
        if rtp_receive_native is None:
            return parse_packet(calls.unprotect(data), ids)
        fields = rtp_receive_native.receive(data, *calls.native_unprotect, ids)
    except (pylibsrtp.Error, ValueError):
        return None
    return None if isinstance(fields, int) else packet_of(fields)
