"""Media received by callback (`bridge/datagram_tap.py`), between two real aiortc peers.

The first test fails loudly when an aiortc/aioice upgrade moves a name the
callback path relies on; read bridge/datagram_tap.py before letting it in."""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
from collections.abc import Callable, Coroutine
from fractions import Fraction
from typing import Any

import pytest
from aioice.ice import Connection, StunProtocol
from aiortc import (
    RTCCertificate,
    RTCConfiguration,
    RTCIceGatherer,
    RTCIceTransport,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
)
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpDecodingParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
)
from aiortc.rtp import RtpPacket, is_rtcp
from pylibsrtp import Policy, Session

from bridge import datagram_tap
from bridge.agent.generated_media import ToneTrack
from bridge.audio_engine import AudioEngine
from bridge.ice_policy import restrict_host_addresses
from bridge.media_tap import PACKET_TAP, route_payload_type, tap_audio
from bridge.rtp_forwarder import RtpForwarder
from tests.support import skip_or_fail


def test_the_names_the_callback_path_uses_are_where_it_expects_them() -> None:
    assert StunProtocol.datagram_received is datagram_tap._datagram_received
    original = inspect.getsource(datagram_tap._original_datagram_received)
    assert "self.receiver.data_received(data, self.local_candidate.component)" in original
    assert "self._queue.put_nowait((data, component))" in inspect.getsource(
        Connection.data_received)
    recv_next = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "data = self._rx_srtp.unprotect(data)" in recv_next
    assert "arrival_time_ms = clock.current_ms()" in recv_next
    handle = inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    assert "RtpPacket.parse(data, self._rtp_header_extensions_map)" in handle
    assert "receiver = self._rtp_router.route_rtp(packet)" in handle
    assert "await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)" in handle
    # The lean audio path reads the router's tables as route_rtp does, without its side
    # effect (learning an SSRC), which only an unknown SSRC triggers.
    route = inspect.getsource(RtpRouter.route_rtp)
    for line in ("ssrc_receiver = self.ssrc_table.get(packet.ssrc)",
                 "pt_receivers = self.payload_type_table.get(packet.payload_type, set())",
                 "if ssrc_receiver is not None and ssrc_receiver in pt_receivers:",
                 "return ssrc_receiver",
                 "if ssrc_receiver is None and len(pt_receivers) == 1:",
                 "self.ssrc_table[packet.ssrc] = pt_receiver"):
        assert line in route, line
    init = inspect.getsource(RTCDtlsTransport.__init__)
    assert "self._rtp_header_extensions_map = rtp.HeaderExtensionsMap()" in init
    assert "self._rtp_router = RtpRouter()" in init
    assert "self._rx_srtp = Session(rx_policy)" in inspect.getsource(
        RTCDtlsTransport._setup_srtp)
    # What a tapped receiver would have done with a packet: only hand it to the tap.
    receiver = RTCRtpReceiver("audio", RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()),
                                                        [RTCCertificate.generateCertificate()]))
    tap_audio(receiver, lambda packet: None)
    assert callable(receiver.__dict__[PACKET_TAP])


MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
Handler = Callable[[RtpPacket, int], Coroutine[Any, Any, None]]
SRTP_KEY = bytes(range(30))  # AES_CM_128_HMAC_SHA1_80: 16 bytes of key, 14 of salt


def srtp_session(ssrc_type: int) -> Session:
    return Session(Policy(key=SRTP_KEY, ssrc_type=ssrc_type,
                          srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80))


def opus_packet(dtls: RTCDtlsTransport, seq: int, *, ssrc: int = 0x1111, payload_type: int = 111,
                level: tuple[bool, int] = (False, 30)) -> bytes:
    packet = RtpPacket(payload_type=payload_type, sequence_number=seq, timestamp=960 * seq,
                       ssrc=ssrc, payload=bytes([0xFC]) + seq.to_bytes(2, "big"))
    packet.extensions.mid = "0"
    packet.extensions.audio_level = level
    return packet.serialize(dtls._rtp_header_extensions_map)


def with_two_byte_level(seq: int, ssrc: int) -> bytes:
    # A one-byte-form element of id 2 (the level) two bytes long: aiortc's parse fails on
    # it with struct.error, not ValueError.
    return (struct.pack("!BBHLL", 0x90, 111, seq, 960 * seq, ssrc)
            + b"\xbe\xde\x00\x01" + bytes([0x21, 5, 5, 0]) + b"\xfc")


async def test_tapped_audio_is_handed_over_in_the_callback_and_the_rest_goes_aiortcs_way(
        caplog: pytest.LogCaptureFixture) -> None:
    """With aiortc's own transport, router, receivers and SRTP: a tapped audio receiver's
    packets reach the tap without its `_handle_rtp_packet` once the router knows their
    SSRC, routed as aiortc routes them; everything else goes aiortc's way."""
    dtls = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()),
                            [RTCCertificate.generateCertificate()])
    dtls._rx_srtp = srtp_session(Policy.SSRC_ANY_INBOUND)
    sender = srtp_session(Policy.SSRC_ANY_OUTBOUND)
    audio = RTCRtpReceiver("audio", dtls)
    dtls._register_rtp_receiver(audio, RTCRtpReceiveParameters(  # no SSRC announced
        codecs=[RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2,
                                      payloadType=111)],
        headerExtensions=[RTCRtpHeaderExtensionParameters(id=1, uri=MID_URI),
                          RTCRtpHeaderExtensionParameters(id=2, uri=LEVEL_URI)]))
    video = RTCRtpReceiver("video", dtls)
    dtls._register_rtp_receiver(video, RTCRtpReceiveParameters(
        codecs=[RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)],
        encodings=[RTCRtpDecodingParameters(ssrc=0x2222, payloadType=96)]))
    tapped: list[RtpPacket] = []
    tap_audio(audio, tapped.append)
    by_aiortc: list[tuple[str, int]] = []  # packets given to a receiver's _handle_rtp_packet

    def counting(kind: str, handle: Handler) -> Handler:
        async def wrapped(packet: RtpPacket, arrival_time_ms: int) -> None:
            by_aiortc.append((kind, packet.sequence_number))
            await handle(packet, arrival_time_ms)
        return wrapped

    audio._handle_rtp_packet = counting("audio", audio._handle_rtp_packet)  # type: ignore[method-assign, assignment]
    video._handle_rtp_packet = counting("video", video._handle_rtp_packet)  # type: ignore[method-assign, assignment]

    def receive(data: bytes) -> None:
        assert datagram_tap._receive_srtp(dtls, sender.protect(data)) is True

    # The first packet of an SSRC nobody announced: aiortc's router learns it.
    receive(opus_packet(dtls, 1))
    assert dtls._rtp_router.ssrc_table[0x1111] is audio
    assert by_aiortc == [("audio", 1)] and [p.sequence_number for p in tapped] == [1]
    # From then on, straight to the tap, with the level.
    for seq in (2, 3, 4):
        receive(opus_packet(dtls, seq, level=(True, seq)))
    assert by_aiortc == [("audio", 1)]
    assert [(p.sequence_number, p.timestamp, p.payload_type, p.extensions.audio_level,
             p.payload) for p in tapped[1:]] == [
        (seq, 960 * seq, 111, (True, seq), bytes([0xFC]) + seq.to_bytes(2, "big"))
        for seq in (2, 3, 4)]
    # A payload type the receiver does not take is dropped, as route_rtp drops it...
    receive(opus_packet(dtls, 5, payload_type=101))
    assert len(tapped) == 4
    # ...until it is routed to the receiver (a SIP leg's telephone-event).
    route_payload_type(audio, 101)
    receive(opus_packet(dtls, 6, payload_type=101))
    assert (tapped[-1].sequence_number, tapped[-1].payload_type) == (6, 101)
    # Video (an untapped receiver) goes aiortc's way.
    receive(RtpPacket(payload_type=96, sequence_number=7, ssrc=0x2222,
                      payload=b"\x10\x00").serialize())
    assert by_aiortc == [("audio", 1), ("video", 7)] and len(tapped) == 5
    # Malformed packets are dropped, on either path, without raising.
    receive(with_two_byte_level(8, 0x1111))
    receive(with_two_byte_level(9, 0x3333))
    assert len(tapped) == 5 and 0x3333 not in dtls._rtp_router.ssrc_table
    # A tap that fails is logged; the datagram callback carries on.
    def failing(packet: RtpPacket) -> None:
        raise RuntimeError("broken tap")

    tap_audio(audio, failing)
    with caplog.at_level(logging.ERROR, logger="bridge.datagram_tap"):
        receive(opus_packet(dtls, 10))
    assert "receiving an RTP packet failed" in caplog.text
    # RTCP is left to aiortc.
    assert datagram_tap._receive_srtp(dtls, bytes([0x80, 201, 0, 1]) + bytes(4)) is False


async def audio_call(track: ToneTrack, on_packet: Callable[[RtpPacket], None]) -> tuple[
        RTCPeerConnection, RTCPeerConnection, RTCRtpTransceiver]:
    """A site sending `track` to a bridge peer whose audio receiver is tapped and whose
    connection receives by callback (once DTLS is up): the site, the bridge, the bridge's
    transceiver."""
    restrict_host_addresses(["127.0.0.1"])
    config = RTCConfiguration(iceServers=[])
    site, bridge = RTCPeerConnection(config), RTCPeerConnection(config)
    site.addTrack(track)
    await site.setLocalDescription(await site.createOffer())
    await bridge.setRemoteDescription(site.localDescription)
    transceiver = bridge.getTransceivers()[0]
    tap_audio(transceiver.receiver, on_packet)
    RtpForwarder(transceiver.sender)  # installs the callback path once DTLS is up
    transceiver.direction = "sendrecv"
    await bridge.setLocalDescription(await bridge.createAnswer())
    await site.setRemoteDescription(bridge.localDescription)
    return site, bridge, transceiver


async def callback_path_installed(transceiver: RTCRtpTransceiver) -> None:
    connection = transceiver.receiver.transport.transport._connection
    for _ in range(250):
        pair = connection._nominated.get(1)
        if pair is not None and datagram_tap.HANDLER in pair.protocol.__dict__:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the callback path was never installed")


async def test_audio_reaches_the_tap_by_callback_and_the_queue_stays_empty() -> None:
    received: list[RtpPacket] = []
    site, bridge, transceiver = await audio_call(ToneTrack(440), received.append)
    try:
        await callback_path_installed(transceiver)
        dtls: Any = transceiver.receiver.transport
        before, queued = len(received), dtls._RTCDtlsTransport__rx_packets
        await asyncio.sleep(0.5)
        assert len(received) - before >= 15  # 20 ms packets...
        # ...not through aioice's queue and aiortc's loop (which count every datagram,
        # here only RTCP: about one a second).
        assert dtls._RTCDtlsTransport__rx_packets - queued <= 3
        assert all(p.payload for p in received)
    finally:
        await site.close()
        await bridge.close()


class Discard:
    """The engine's output for the site (what the site would hear is not looked at)."""

    def push(self, data: bytes, pts: int, time_base: Fraction) -> bool:
        return True


@pytest.mark.parametrize("path", ["native", "python"])
async def test_a_real_sites_audio_reaches_the_engine_by_the_lean_path_with_its_levels(
        path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real aiortc site speaks, then mutes: every packet the engine gets after the
    callback path is up skipped the receiver's handler, and carries the sequence number,
    level and payload the site sent; unprotected and parsed in C
    (`bridge/rtp_receive_native.c`), or in Python where the module is not built."""
    if path == "python":
        monkeypatch.setattr(datagram_tap, "rtp_receive_native", None)
    elif datagram_tap.rtp_receive_native is None:
        skip_or_fail("bridge/rtp_receive_native.c is not built (pip install -e . builds it)")
    engine = AudioEngine()
    engine.add_site("SITE", Discard())
    engine.audible = frozenset({"SITE"})
    received: list[RtpPacket] = []

    def on_packet(packet: RtpPacket) -> None:
        received.append(packet)
        engine.on_packet("SITE", packet)

    track = ToneTrack(440)
    site, bridge, transceiver = await audio_call(track, on_packet)
    receiver = transceiver.receiver
    by_handler: list[int] = []
    tap_handle = receiver._handle_rtp_packet

    async def counting(packet: RtpPacket, arrival_time_ms: int) -> None:
        by_handler.append(packet.sequence_number)
        await tap_handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = counting  # type: ignore[method-assign]
    sent: dict[int, tuple[tuple[bool, int] | None, bytes]] = {}
    site_dtls = site.getTransceivers()[0].sender.transport
    site_send = site_dtls._send_rtp

    async def recording(data: bytes) -> None:
        if not is_rtcp(data):  # the same method sends the site's RTCP
            packet = RtpPacket.parse(data, site_dtls._rtp_header_extensions_map)
            sent[packet.sequence_number] = (packet.extensions.audio_level, packet.payload)
        await site_send(data)

    site_dtls._send_rtp = recording  # type: ignore[method-assign]
    try:
        await callback_path_installed(transceiver)
        await asyncio.sleep(0.1)  # what aioice's queue still held is through
        start, handled = len(received), len(by_handler)
        await asyncio.sleep(0.6)
        track.muted = True
        await asyncio.sleep(0.6)
        lean = received[start:]
        assert len(lean) >= 40 and len(by_handler) == handled  # none by the handler
        assert [(p.extensions.audio_level, p.payload) for p in lean] == [
            sent[p.sequence_number] for p in lean]
        sequence = [p.sequence_number for p in lean]
        assert sequence == [(sequence[0] + n) % 65536 for n in range(len(sequence))]
        levels = {p.extensions.audio_level for p in lean}
        assert (False, 127) in levels  # muted
        assert any(level is not None and level[1] < 30 for level in levels)  # the tone
        stats = engine.stats["SITE"]
        assert (stats.packets, stats.lost) == (len(received), 0)
        assert stats.highest_seq == sequence[-1]
        assert "SITE" in engine.detector.levels()
    finally:
        await site.close()
        await bridge.close()
