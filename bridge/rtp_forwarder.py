"""Sending the bridge's media: one RTP stream to one site, synchronously, without aiortc's
per-packet sender coroutine (private API, pinned to aiortc 1.16.0 / aioice 0.13.0).

aiortc's `RTCRtpSender` wakes a coroutine per frame, builds an `RtpPacket` per
packet, computes abs-send-time from a datetime, serialises, protects and then
awaits aioice's send chain: the largest share of the bridge's CPU
(docs/performance.md). The bridge forwards frames it already has, so here:

- the payload parts are prepared once per source frame (`VideoOutput`: VP8
  cut once per source frame, only the picture ID written per receiver);
- each frame leaves in one call into `rtp_send_native` (C,
  `bridge/rtp_send_native.c`): every packet's header (SSRC, sequence number,
  timestamp, marker, payload type, the MID and abs-send-time header
  extensions), SRTP protection with the DTLS transport's session (its libsrtp
  context, `srtp_calls.SessionCalls.native_protect`), and `sendmsg` on the nominated
  candidate pair's socket, in the caller's call (no task, no await). A frame
  of several packets (equal sizes but the last, as VP8 is cut) leaves in one
  `sendmsg` with UDP segmentation offload (Linux GSO, `UDP_SEGMENT`): one
  system call and one pass down the network stack, each packet still its own
  datagram on the wire. Where the kernel or interface refuses GSO, packets go
  one by one; what a send could not take (a full socket buffer, a network
  error) goes through the transport, which queues it or reports the error;
- the same work in Python, packet by packet through the transport, where the
  native sender cannot go: a TURN relay (its transport wraps each datagram for
  the server), a TCP candidate, IPv6, or the module not built;
- aiortc's sender stays in place for everything else: it answers PLIs
  (`media_tap.on_keyframe_request`), sends its RTCP sender reports from the
  counters this module keeps up to date, and reads receiver reports (RTT,
  jitter). Its own RTP loop idles on a track that never yields;
- NACKs: `RTCRtpSender._retransmit` is replaced per sender by a lookup in this
  module's history of the last 64 frames (each packet rebuilt from its frame's
  parts), sent again as RTX when RTX was negotiated (as aiortc does);
- once DTLS is up, the connection's RTCP (aiortc's sender and receiver
  reports, REMB, NACK, PLI) and those retransmissions leave on the same
  direct path (`bridge/rtcp_sender.py`).

A small module of our own rather than patches all over aiortc: the private
names it reaches (the sender's counters, the DTLS transport's SRTP session and
state, aioice's nominated pair) are few and checked by
`tests/test_rtp_forwarder.py`, which fails loudly when an upgrade moves them;
`tests/test_rtp_send_native.py` checks that the native sender puts on the wire
what the Python path builds."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import struct
import time
from collections import deque
from collections.abc import Sequence
from fractions import Fraction
from functools import partial
from typing import Any, Protocol

from aioice.ice import StunProtocol
from aioice.turn import TurnTransport
from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.rtcdtlstransport import State as DtlsState

from bridge import datagram_tap, rtcp_sender, srtp_calls

try:
    from bridge import rtp_send_native
except ImportError:  # not built (no C compiler at install): packets go through Python
    rtp_send_native = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

GSO_UNSUPPORTED = {errno.EINVAL, errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP}
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
HISTORY_SIZE = 64  # frames kept for NACKs: 4 s of 15 fps video (libwebrtc: at least 1 s)
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
VP8_MAX_CHUNK = 1300 - 4  # aiortc's PACKET_MAX minus our 4-byte payload descriptor

_header = struct.Struct("!BBHII")

# A sent frame, for NACKs: first sequence number, packets, RTP timestamp, send time (for
# its abs-send-time), the two payload prefixes and the chunks.
SentFrame = tuple[int, int, int, float, bytes, bytes, Sequence[bytes]]


class AudioOutput(Protocol):
    """Where the audio engine sends a site's mix (`RtpForwarder`, or a test's stand-in)."""

    def push(self, data: bytes, pts: int, time_base: Fraction) -> bool:
        """Send one encoded frame at `pts` (in `time_base`); False when it was dropped."""
        ...


class IdleTrack(MediaStreamTrack):
    """Given to aiortc's sender so that its own RTP loop waits and never sends."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Any:
        await asyncio.get_running_loop().create_future()  # never set: wait until stopped


class RtpForwarder:
    """One RTP stream to one site, sent from the caller's call.

    Created right after the transceiver exists (before the answer); starts
    sending once aiortc's sender has started (DTLS connected). Until then, and
    after the connection closed, frames are dropped and counted."""

    def __init__(self, sender: RTCRtpSender, *, segmented: bool = True) -> None:
        self.sender = sender
        self.sent = 0  # packets
        self.dropped = 0  # frames dropped while not connected
        self.retransmitted = 0
        self.native_sends = 0  # frames sent by `rtp_send_native` (else by Python)
        self._ready = False
        self._dtls: Any = sender.transport
        self._srtp: Any = None
        self._protect: tuple[int, int] = (0, 0)  # libsrtp's srtp_protect, the context
        self._ssrc = sender._ssrc
        self._rtx_ssrc = sender._rtx_ssrc
        self._payload_type = 0
        self._rtx_payload_type: int | None = None
        self._mid_element = b""
        self._abs_id = 0
        # The header extension, with room for the abs-send-time at `_abs_offset` (-1: none).
        self._ext_template, self._abs_offset = b"", -1
        self._pair: Any = None
        self._send: Any = None
        self._native: tuple[Any, int, bytes] | None = None  # transport, fd, sockaddr
        self._sequence = int.from_bytes(os.urandom(2), "big") % 32768
        self._rtx_sequence = int.from_bytes(os.urandom(2), "big") % 32768
        self._origin = int.from_bytes(os.urandom(4), "big")
        self._history: deque[SentFrame] = deque(maxlen=HISTORY_SIZE)
        self._pending: set[asyncio.Future[None]] = set()
        self._segmented = segmented
        sender.replaceTrack(IdleTrack(sender.kind))
        original_send = sender.send

        async def send(parameters: Any) -> None:
            await original_send(parameters)  # DTLS is up: aiortc's sender starts (idle)
            self._configure(parameters)

        sender.send = send  # type: ignore[method-assign]
        sender._retransmit = self._retransmit  # type: ignore[method-assign]

    @property
    def connected(self) -> bool:
        """True once sending is possible (DTLS up), until the connection closes."""
        return self._ready and self._dtls._state == DtlsState.CONNECTED

    def _configure(self, parameters: Any) -> None:
        ids = {e.uri: e.id for e in parameters.headerExtensions}
        mid = (parameters.muxId or "").encode()
        mid_id = ids.get(MID_URI)
        if mid_id and mid:
            self._mid_element = bytes([(mid_id << 4) | (len(mid) - 1)]) + mid
        self._abs_id = ids.get(ABS_SEND_TIME_URI) or 0
        codec = parameters.codecs[0]
        self._payload_type = codec.payloadType
        for other in parameters.codecs:
            if (other.mimeType.lower().endswith("/rtx")
                    and other.parameters.get("apt") == codec.payloadType):
                self._rtx_payload_type = other.payloadType
                break
        self._prepare_extension()
        self._dtls = self.sender.transport
        self._ready = True
        # DTLS is up: from now on the connection's media also come in by callback, and
        # its RTCP (and our retransmissions) leave as directly as its RTP.
        datagram_tap.install(self._dtls)
        rtcp_sender.install(self._dtls)

    def _prepare_extension(self) -> None:
        # The header extension is the same for every packet but the abs-send-time's three
        # bytes: made once here (RFC 8285 one-byte form), the time written per frame.
        elements = self._mid_element
        if self._abs_id:
            elements += bytes([(self._abs_id << 4) | 2])
            size = len(elements) + 3
        else:
            size = len(elements)
        if not size:
            self._ext_template, self._abs_offset = b"", -1
            return
        padding = -size % 4
        head = b"\xbe\xde" + struct.pack("!H", (size + padding) // 4) + elements
        if self._abs_id:
            self._ext_template = head + b"\0\0\0" + b"\0" * padding
            self._abs_offset = len(head)
        else:
            self._ext_template, self._abs_offset = head + b"\0" * padding, -1

    def _extension(self, now: float) -> bytes:
        offset = self._abs_offset
        if offset < 0:
            return self._ext_template
        abs_time = int(now * (1 << 18)) & 0xFFFFFF  # 6.18 fixed point seconds
        return (self._ext_template[:offset] + abs_time.to_bytes(3, "big")
                + self._ext_template[offset + 3:])

    def _clear_packet(self, extension: bytes, sequence: int, timestamp: int, last: bool,
                      lead: bytes, chunk: bytes) -> bytes:
        """One packet as the native sender builds it, before SRTP."""
        header = _header.pack(0x90 if extension else 0x80,
                              self._payload_type | 0x80 if last else self._payload_type,
                              sequence, timestamp, self._ssrc)
        return b"".join((header, extension, lead, chunk))

    def _route(self, pair: Any) -> None:
        # The nominated pair's way out, looked up again only when the pair changes.
        protocol = pair.protocol
        # A UDP host/relay candidate: its datagram transport (a TURN relay's too) sends at
        # once. Any other kind: aioice's own coroutine, one task per packet, in order.
        self._send = (protocol.transport.sendto if type(protocol) is StunProtocol
                      else partial(self._send_later, protocol))
        self._native = native_route(protocol, pair.remote_addr)
        self._pair = pair

    def send_chunks(self, timestamp: int, chunks: Sequence[bytes], first_prefix: bytes = b"",
                    prefix: bytes = b"") -> bool:
        """Send one frame, one packet per chunk: the first packet's payload is
        `first_prefix + chunks[0]`, each other's `prefix + chunk`; the last gets the
        marker bit. `timestamp` is on the codec's clock (our origin is added).
        Returns False when the frame was dropped (not connected)."""
        if not chunks:
            return True
        dtls = self._dtls
        if not self._ready or dtls._state != DtlsState.CONNECTED:
            self.dropped += 1
            return False
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            self.dropped += 1
            return False
        if pair is not self._pair:
            self._route(pair)
        srtp = dtls._tx_srtp
        if srtp is not self._srtp:
            self._srtp, self._protect = srtp, srtp_calls.calls(srtp).native_protect
        now = time.time()
        timestamp = (self._origin + timestamp) & 0xFFFFFFFF
        sequence = self._sequence
        native = self._native
        if native is not None and not native[0].is_closing():
            octets = self._send_native(native, now, sequence, timestamp, chunks,
                                       first_prefix, prefix)
        else:
            octets = self._send_python(now, sequence, timestamp, chunks, first_prefix, prefix)
        count = len(chunks)
        self._history.append((sequence, count, timestamp, now, first_prefix, prefix, chunks))
        self._sequence = (sequence + count) & 0xFFFF
        self.sent += count
        # What aiortc's sender puts into its RTCP sender reports.
        sender: Any = self.sender
        sender._RTCRtpSender__ntp_timestamp = int((now + NTP_EPOCH_OFFSET) * (1 << 32))
        sender._RTCRtpSender__rtp_timestamp = timestamp
        sender._RTCRtpSender__octet_count += octets
        sender._RTCRtpSender__packet_count += count
        return True

    def _send_native(self, native: tuple[Any, int, bytes], now: float, sequence: int,
                     timestamp: int, chunks: Sequence[bytes], first_prefix: bytes,
                     prefix: bytes) -> int:
        """The frame in one call into `rtp_send_native`; returns the payload octets."""
        assert rtp_send_native is not None  # a native route exists only with the module
        _transport, fd, sockaddr = native
        protect, context = self._protect
        result = rtp_send_native.send_frame(
            fd, sockaddr, protect, context, self._ext_template, self._abs_offset, now,
            self._payload_type, sequence, timestamp, self._ssrc, first_prefix, prefix,
            chunks, self._segmented)
        self.native_sends += 1
        if type(result) is int:
            return result
        error, unsent = result  # type: ignore[misc]
        if error in GSO_UNSUPPORTED and self._segmented:  # not on this kernel or interface
            log.info("UDP segmentation offload unavailable (%s): one datagram per packet",
                     os.strerror(error))
            self._segmented = False
        # A full socket buffer or a network error: the transport queues the rest, or
        # reports the error, as it would have without the native path.
        for datagram in unsent:
            self._send(datagram, self._pair.remote_addr)
        return payload_octets(chunks, first_prefix, prefix)

    def _send_python(self, now: float, sequence: int, timestamp: int, chunks: Sequence[bytes],
                     first_prefix: bytes, prefix: bytes) -> int:
        """The frame packet by packet through the transport (a route the native sender
        does not take: TCP, a TURN relay, IPv6; or the module not built)."""
        send, addr = self._send, self._pair.remote_addr
        protect = srtp_calls.calls(self._srtp).protect
        extension = self._extension(now)
        last = len(chunks) - 1
        for index, chunk in enumerate(chunks):
            send(protect(self._clear_packet(extension, sequence, timestamp, index == last,
                                            prefix if index else first_prefix, chunk)), addr)
            sequence = (sequence + 1) & 0xFFFF
        return payload_octets(chunks, first_prefix, prefix)

    def _send_later(self, protocol: Any, data: bytes, addr: Any) -> None:
        task = asyncio.ensure_future(protocol.send_data(data, addr))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def push(self, data: bytes, pts: int, time_base: Fraction) -> bool:
        """Send one audio frame (one packet); `pts` on the codec's clock, as `OutboundTrack`."""
        return self.send_chunks(pts, (data,))

    def _packet_again(self, sequence_number: int) -> bytes | None:
        """The clear RTP packet sent with `sequence_number`, if still in the history."""
        for first, count, timestamp, now, first_prefix, prefix, chunks in reversed(
                self._history):
            index = (sequence_number - first) & 0xFFFF
            if index < count:
                return self._clear_packet(self._extension(now), sequence_number, timestamp,
                                          index == count - 1, prefix if index else first_prefix,
                                          chunks[index])
        return None

    async def _retransmit(self, sequence_number: int) -> None:
        # Replaces RTCRtpSender._retransmit: a site's NACK for one of our packets.
        packet = self._packet_again(sequence_number)
        if packet is None or self._srtp is None:
            return
        if self._rtx_payload_type is not None:
            header_length = 12 + len(self._ext_template)
            header = _header.pack(packet[0], (packet[1] & 0x80) | self._rtx_payload_type,
                                  self._rtx_sequence, int.from_bytes(packet[4:8], "big"),
                                  self._rtx_ssrc)
            self._rtx_sequence = (self._rtx_sequence + 1) & 0xFFFF
            packet = b"".join((header, packet[12:header_length], packet[2:4],
                               packet[header_length:]))
        try:
            await self._dtls._send_rtp(packet)
            self.retransmitted += 1
        except ConnectionError:
            pass


def native_route(protocol: Any, addr: tuple[Any, ...]) -> tuple[Any, int, bytes] | None:
    """What `rtp_send_native` needs to send on this candidate pair (its transport, to check
    it is open, the socket's descriptor, the packed IPv4 address), or None when it cannot:
    the module not built, not aioice's UDP protocol, a TURN relay (its transport wraps
    each datagram for the server), not IPv4."""
    if rtp_send_native is None or type(protocol) is not StunProtocol:
        return None
    transport = protocol.transport
    if isinstance(transport, TurnTransport) or transport.is_closing():
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_INET:
        return None
    try:
        sockaddr = pack_sockaddr(addr[0], addr[1])
    except (OSError, TypeError):
        return None
    return transport, sock.fileno(), sockaddr


def pack_sockaddr(host: str, port: int) -> bytes:
    """A `struct sockaddr_in` for `rtp_send_native`: family (host order), port (network
    order), the IPv4 address, padding. OSError when `host` is not an IPv4 address."""
    return (struct.pack("=H", socket.AF_INET) + struct.pack("!H", port)
            + socket.inet_aton(host) + bytes(8))


def payload_octets(chunks: Sequence[bytes], first_prefix: bytes, prefix: bytes) -> int:
    """The payload bytes of a frame's packets (the RTCP sender report's octet count)."""
    return sum(map(len, chunks)) + len(first_prefix) + len(prefix) * (len(chunks) - 1)


class EncodedFrame:
    """One encoded VP8 frame of a source; its packet bodies are cut once, when first needed,
    and shared by every stream that forwards it."""

    __slots__ = ("_chunks", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._chunks: list[bytes] | None = None

    @property
    def chunks(self) -> list[bytes]:
        """The frame cut into packet bodies, as aiortc's VP8 packetiser cuts it."""
        if self._chunks is None:
            self._chunks = vp8_chunks(self.data)
        return self._chunks


class VideoOutput:
    """A video slot's stream to one site: each frame as VP8 packets, picture IDs our own.

    The frame's chunks are cut once per source frame (`EncodedFrame`) and shared by
    every slot forwarding it; here only the 4-byte payload descriptor (with this
    stream's running picture ID, so the site sees one continuous stream whatever
    the source) is made per frame."""

    def __init__(self, forwarder: RtpForwarder) -> None:
        self.forwarder = forwarder
        self._picture_id = int.from_bytes(os.urandom(2), "big") & 0x7FFF

    def send_frame(self, frame: EncodedFrame, timestamp: int) -> bool:
        """Send one encoded VP8 frame (90 kHz `timestamp`); False if it was dropped."""
        chunks = frame.chunks
        picture = struct.pack("!H", 0x8000 | self._picture_id)
        self._picture_id = (self._picture_id + 1) & 0x7FFF
        return self.forwarder.send_chunks(timestamp, chunks, b"\x90\x80" + picture,
                                          b"\x80\x80" + picture)


def vp8_chunks(frame: bytes) -> list[bytes]:
    """Cut an encoded VP8 frame into packet bodies as aiortc's packetiser does."""
    return [frame[pos:pos + VP8_MAX_CHUNK] for pos in range(0, len(frame), VP8_MAX_CHUNK)]
