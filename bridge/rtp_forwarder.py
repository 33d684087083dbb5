"""Sending the bridge's media: one RTP stream to one site, synchronously, without aiortc's
per-packet sender coroutine (private API, pinned to aiortc 1.16.0 / aioice 0.13.0).

aiortc's `RTCRtpSender` wakes a coroutine per frame, builds an `RtpPacket` per
packet, computes abs-send-time from a datetime, serialises, protects and then
awaits aioice's send chain: the largest share of the bridge's CPU
(docs/performance.md). The bridge forwards frames it already has, so here:

- each packet's header is packed with `struct` (SSRC, sequence number,
  timestamp, marker, payload type) with the MID and abs-send-time header
  extensions, in front of payload parts the caller prepared once per source
  frame (`VideoOutput`: VP8 packetised once per source frame, only the
  picture ID written per receiver);
- SRTP protection with the DTLS transport's session (called straight into
  libsrtp, `bridge/srtp_calls.py`), and `sendto` on the nominated candidate
  pair's datagram transport, in the caller's call (no
  task, no await); a frame of several packets (equal sizes but the last, as
  VP8 is cut) leaves in one `sendmsg` with UDP segmentation offload (Linux
  GSO, `UDP_SEGMENT`): one system call and one pass down the network stack
  instead of one per packet, each packet still its own datagram on the wire.
  Where the kernel or interface refuses GSO, packets go one by one;
- aiortc's sender stays in place for everything else: it answers PLIs
  (`media_tap.on_keyframe_request`), sends its RTCP sender reports from the
  counters this module keeps up to date, and reads receiver reports (RTT,
  jitter). Its own RTP loop idles on a track that never yields;
- NACKs: `RTCRtpSender._retransmit` is replaced per sender by a lookup in this
  module's history of the last 128 packets, sent again as RTX when RTX was
  negotiated (as aiortc does);
- once DTLS is up, the connection's RTCP (aiortc's sender and receiver
  reports, REMB, NACK, PLI) and those retransmissions leave on the same
  direct path (`bridge/rtcp_sender.py`).

A small module of our own rather than patches all over aiortc: the private
names it reaches (the sender's counters, the DTLS transport's SRTP session and
state, aioice's nominated pair) are few and checked by
`tests/test_rtp_forwarder.py`, which fails loudly when an upgrade moves them."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import struct
import sys
import time
import weakref
from collections.abc import Sequence
from fractions import Fraction
from functools import partial
from typing import Any, Protocol

from aioice.ice import StunProtocol
from aioice.turn import TurnTransport
from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.rtcdtlstransport import State as DtlsState

from bridge import datagram_tap, rtcp_sender, srtp_calls

log = logging.getLogger(__name__)

SOL_UDP = 17
UDP_SEGMENT = 103  # Linux: send one buffer as several datagrams of this size (since 4.18)
GSO_UNSUPPORTED = {errno.EINVAL, errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP}
GSO_SOCKET = "_vcbridge_gso_socket"  # attribute set on a StunProtocol instance
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
HISTORY_SIZE = 128  # packets kept for NACKs, as aiortc's RTP_HISTORY_SIZE
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
VP8_MAX_CHUNK = 1300 - 4  # aiortc's PACKET_MAX minus our 4-byte payload descriptor

_header = struct.Struct("!BBHII")


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
        self.segmented_sends = 0  # frames sent in one system call (GSO)
        self._ready = False
        self._dtls: Any = sender.transport
        self._srtp: Any = None
        self._ssrc = sender._ssrc
        self._rtx_ssrc = sender._rtx_ssrc
        self._payload_type = 0
        self._rtx_payload_type: int | None = None
        self._mid_element = b""
        self._abs_id = 0
        self._ext_head = self._ext_tail = b""
        self._pair: Any = None
        self._send: Any = None
        self._sequence = int.from_bytes(os.urandom(2), "big") % 32768
        self._rtx_sequence = int.from_bytes(os.urandom(2), "big") % 32768
        self._origin = int.from_bytes(os.urandom(4), "big")
        self._history: list[tuple[int, bytes, int] | None] = [None] * HISTORY_SIZE
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
        # bytes: its head and padding are made once here (RFC 8285 one-byte form).
        elements = self._mid_element
        if self._abs_id:
            elements += bytes([(self._abs_id << 4) | 2])
            size = len(elements) + 3
        else:
            size = len(elements)
        if not size:
            self._ext_head = self._ext_tail = b""
            return
        padding = -size % 4
        self._ext_head = b"\xbe\xde" + struct.pack("!H", (size + padding) // 4) + elements
        self._ext_tail = b"\0" * padding
        if not self._abs_id:  # nothing changes per packet: the whole extension, once
            self._ext_head, self._ext_tail = self._ext_head + self._ext_tail, b""

    def _extension(self, now: float) -> bytes:
        if not self._abs_id:
            return self._ext_head
        abs_time = int(now * (1 << 18)) & 0xFFFFFF  # 6.18 fixed point seconds
        return self._ext_head + abs_time.to_bytes(3, "big") + self._ext_tail

    def _route(self, pair: Any) -> None:
        # The nominated pair's way out, looked up again only when the pair changes.
        protocol = pair.protocol
        # A UDP host/relay candidate: its datagram transport (a TURN relay's too) sends at
        # once. Any other kind: aioice's own coroutine, one task per packet, in order.
        self._send = (protocol.transport.sendto if type(protocol) is StunProtocol
                      else partial(self._send_later, protocol))
        self._pair = pair

    def send_packets(self, timestamp: int, packets: Sequence[tuple[bytes, bytes]]) -> bool:
        """Send one frame: each packet's payload is `prefix + body`; the last gets the
        marker bit. `timestamp` is on the codec's clock (our origin is added).
        Returns False when the frame was dropped (not connected)."""
        if not packets:
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
        send, addr = self._send, pair.remote_addr
        srtp = self._srtp = dtls._tx_srtp
        protect = srtp_calls.calls(srtp).protect
        now = time.time()
        extension = self._extension(now)
        first = 0x90 if extension else 0x80
        timestamp = (self._origin + timestamp) & 0xFFFFFFFF
        payload_type, ssrc, history = self._payload_type, self._ssrc, self._history
        header_length = 12 + len(extension)
        sequence = self._sequence
        last = len(packets) - 1
        if not last:  # one packet (audio, a small video frame): no list, no GSO
            prefix, body = packets[0]
            packet = b"".join((_header.pack(first, payload_type | 0x80, sequence, timestamp,
                                            ssrc), extension, prefix, body))
            history[sequence % HISTORY_SIZE] = (sequence, packet, header_length)
            send(protect(packet), addr)
            octets = len(prefix) + len(body)
            sequence = (sequence + 1) & 0xFFFF
        else:
            octets = 0
            protected = []
            for index, (prefix, body) in enumerate(packets):
                header = _header.pack(first,
                                      payload_type | 0x80 if index == last else payload_type,
                                      sequence, timestamp, ssrc)
                packet = b"".join((header, extension, prefix, body))
                history[sequence % HISTORY_SIZE] = (sequence, packet, header_length)
                protected.append(protect(packet))
                octets += len(prefix) + len(body)
                sequence = (sequence + 1) & 0xFFFF
            if not (self._segmented
                    and self._send_segmented(pair.protocol, protected, addr)):
                for datagram in protected:
                    send(datagram, addr)
        self._sequence = sequence
        self.sent += len(packets)
        # What aiortc's sender puts into its RTCP sender reports.
        sender: Any = self.sender
        sender._RTCRtpSender__ntp_timestamp = int((now + NTP_EPOCH_OFFSET) * (1 << 32))
        sender._RTCRtpSender__rtp_timestamp = timestamp
        sender._RTCRtpSender__octet_count += octets
        sender._RTCRtpSender__packet_count += len(packets)
        return True

    def _send_segmented(self, protocol: Any, datagrams: list[bytes], addr: Any) -> bool:
        """Send a frame's datagrams in one system call with UDP segmentation offload (GSO):
        the kernel cuts the buffer into datagrams of the first one's size (only the last
        may be shorter). False when that is not possible here; then send one by one."""
        size = len(datagrams[0])
        if any(len(d) != size for d in datagrams[1:-1]) or len(datagrams[-1]) > size:
            return False
        transport = protocol.transport
        # A TURN relay's transport wraps each datagram for the server: never bypass it.
        if (type(protocol) is not StunProtocol or isinstance(transport, TurnTransport)
                or transport.is_closing()):
            return False
        sock = self._gso_socket(protocol, transport)
        if sock is None:
            return False
        try:
            segment = (SOL_UDP, UDP_SEGMENT, size.to_bytes(2, sys.byteorder))
            sock.sendmsg([b"".join(datagrams)], [segment], 0, addr)
        except BlockingIOError:
            return False  # the socket's buffer is full: the transport queues them
        except OSError as exc:
            if exc.errno in GSO_UNSUPPORTED:  # not on this kernel or interface: never again
                log.info("UDP segmentation offload unavailable (%s): one datagram per packet",
                         exc)
                self._segmented = False
            # Otherwise (a network error: ENOBUFS, unreachable...) one by one this time, so
            # the transport sees and handles the error as it would without GSO.
            return False
        self.segmented_sends += 1
        return True

    def _gso_socket(self, protocol: Any, transport: Any) -> socket.socket | None:
        # A socket object on the transport's own descriptor, never closing it (detached
        # when the protocol goes); the transport is checked open before every use.
        sock: socket.socket | None = protocol.__dict__.get(GSO_SOCKET)
        if sock is None:
            raw = transport.get_extra_info("socket")
            if raw is None or raw.family != socket.AF_INET:
                return None
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, fileno=raw.fileno())
            weakref.finalize(protocol, sock.detach)
            protocol.__dict__[GSO_SOCKET] = sock
        return sock

    def _send_later(self, protocol: Any, data: bytes, addr: Any) -> None:
        task = asyncio.ensure_future(protocol.send_data(data, addr))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def push(self, data: bytes, pts: int, time_base: Fraction) -> bool:
        """Send one audio frame (one packet); `pts` on the codec's clock, as `OutboundTrack`."""
        return self.send_packets(pts, ((b"", data),))

    async def _retransmit(self, sequence_number: int) -> None:
        # Replaces RTCRtpSender._retransmit: a site's NACK for one of our packets.
        entry = self._history[sequence_number % HISTORY_SIZE]
        if entry is None or entry[0] != sequence_number or self._srtp is None:
            return
        _seq, packet, header_length = entry
        if self._rtx_payload_type is not None:
            extension = packet[12:header_length]
            header = _header.pack(packet[0], (packet[1] & 0x80) | self._rtx_payload_type,
                                  self._rtx_sequence, int.from_bytes(packet[4:8], "big"),
                                  self._rtx_ssrc)
            self._rtx_sequence = (self._rtx_sequence + 1) & 0xFFFF
            packet = b"".join((header, extension, packet[2:4], packet[header_length:]))
        try:
            await self._dtls._send_rtp(packet)
            self.retransmitted += 1
        except ConnectionError:
            pass


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
        start, rest = b"\x90\x80" + picture, b"\x80\x80" + picture
        return self.forwarder.send_packets(
            timestamp, [(start if i == 0 else rest, chunk) for i, chunk in enumerate(chunks)])


def vp8_chunks(frame: bytes) -> list[bytes]:
    """Cut an encoded VP8 frame into packet bodies as aiortc's packetiser does."""
    return [frame[pos:pos + VP8_MAX_CHUNK] for pos in range(0, len(frame), VP8_MAX_CHUNK)]
