"""The aiortc internals the bridge relies on are still where it expects them.

If one of these fails after an aiortc upgrade, read bridge/media_tap.py and
adapt it before letting the upgrade in."""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import version

import aiortc.rtcrtpreceiver as rtcrtpreceiver
from aiortc import (
    RTCCertificate,
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCIceTransport,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
)
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket, wrap_rtx

from bridge import media_tap


def test_aiortc_is_the_pinned_version() -> None:
    assert version("aiortc") == media_tap.PINNED_AIORTC


def test_receiver_hooks_exist_with_the_expected_shape() -> None:
    handle = inspect.signature(RTCRtpReceiver._handle_rtp_packet)
    assert list(handle.parameters) == ["self", "packet", "arrival_time_ms"]
    source = inspect.getsource(RTCRtpReceiver)
    # The decoder queue we replace, and how frames are put on it.
    assert "self.__decoder_queue: queue.Queue = queue.Queue()" in source
    assert "self.__decoder_queue.put((codec, encoded_frame))" in source
    # The decoder thread target is looked up in the module at start time.
    assert "target=decoder_worker" in source
    assert rtcrtpreceiver.decoder_worker is media_tap._decoder_worker
    assert list(inspect.signature(media_tap._original_decoder_worker).parameters) == [
        "loop", "input_q", "output_q", "decode_error"]
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp_pli).parameters) == [
        "self", "media_ssrc"]
    # What a stuck video receiver's restart replaces and reads (video_stall.py).
    assert "self.__jitter_buffer = JitterBuffer(capacity=512, is_video=True)" in source
    assert "self.__nack_generator = NackGenerator()" in source
    assert "self.__remote_streams: dict[int, StreamStatistics] = {}" in source
    assert "packets_received" in inspect.getsource(rtcrtpreceiver.StreamStatistics.__init__)


def test_the_video_ingest_reads_what_aiortcs_receive_path_uses() -> None:
    # VideoIngest (the bridge's video receive path) does part of what aiortc's
    # _handle_rtp_packet does, with aiortc's own objects: if these lines move, read
    # RTCRtpReceiver._handle_rtp_packet again and adapt VideoIngest.handle.
    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    for line in (
        "if not self._enabled:",
        "codec = self.__codecs.get(packet.payload_type)",
        "self.__remote_streams[packet.ssrc] = StreamStatistics(codec.clockRate)",
        "self.__remote_streams[packet.ssrc].add(packet)",
        "original_ssrc = self.__rtx_ssrc.get(packet.ssrc)",
        "packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)",
        "if self.__nack_generator is not None and self.__nack_generator.add(packet):",
        "packet.ssrc, sorted(self.__nack_generator.missing)",
        "remb = self.__remote_bitrate_estimator.add(",
        "if self.__rtcp_ssrc is not None and remb is not None:",
        "fci=pack_remb_fci(*remb),",
        "await self._send_rtcp(rtcp_packet)",
        "encoded_frame.timestamp = self.__timestamp_mapper.map(",
        "await self._send_rtcp_pli(packet.ssrc)",
    ):
        assert line in handle, line
    init = inspect.getsource(RTCRtpReceiver.__init__)
    for line in ("self.__codecs: dict[int, RTCRtpCodecParameters] = {}",
                 "self.__rtcp_ssrc: Optional[int] = None",
                 "self.__remote_bitrate_estimator = RemoteBitrateEstimator()",
                 "self.__timestamp_mapper = TimestampMapper()"):
        assert line in init, line
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp_nack).parameters) == [
        "self", "media_ssrc", "lost"]
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp).parameters) == ["self", "packet"]
    assert list(inspect.signature(rtcrtpreceiver.RemoteBitrateEstimator.add).parameters) == [
        "self", "arrival_time_ms", "abs_send_time", "payload_size", "ssrc"]
    # What receiver reports are built from: the statistics VideoIngest keeps feeding.
    assert "for ssrc, stream in self.__remote_streams.items():" in inspect.getsource(
        RTCRtpReceiver._run_rtcp)


def test_sender_hooks_exist_with_the_expected_shape() -> None:
    assert list(inspect.signature(RTCRtpSender._send_keyframe).parameters) == ["self"]
    source = inspect.getsource(RTCRtpSender._next_encoded_frame)
    # Pre-encoded packets go through pack(), not the encoder.
    assert "self.__encoder.pack(data)" in source
    assert list(inspect.signature(Vp8Encoder.pack).parameters) == ["self", "packet"]
    assert list(inspect.signature(OpusEncoder.pack).parameters) == ["self", "packet"]


def test_the_router_table_a_payload_type_is_added_to_has_the_expected_shape() -> None:
    # route_payload_type (SIP legs' telephone-event) adds the receiver to this table, and
    # route_rtp drops a packet whose payload type has no receiver there.
    from aiortc.rtcdtlstransport import RtpRouter

    router = RtpRouter()
    assert router.payload_type_table == {}
    assert "self.payload_type_table.get(packet.payload_type, set())" in inspect.getsource(
        RtpRouter.route_rtp)
    assert "self._rtp_router = RtpRouter()" in inspect.getsource(
        importlib.import_module("aiortc.rtcdtlstransport").RTCDtlsTransport.__init__)


def test_vp8_keyframe_flag() -> None:
    assert media_tap.is_vp8_keyframe(bytes([0x10, 0x02, 0x00]))  # P bit 0: key frame
    assert not media_tap.is_vp8_keyframe(bytes([0x11, 0x02, 0x00]))
    assert not media_tap.is_vp8_keyframe(b"")


def test_sink_hands_frames_over_and_ignores_the_stop_marker() -> None:
    seen: list[tuple[bytes, int]] = []
    sink = media_tap.EncodedFrameSink(lambda data, ts: seen.append((data, ts)))

    class Frame:
        data = b"\x10abc"
        timestamp = 3000

    sink.put((None, Frame()))
    sink.put(None)
    assert seen == [(b"\x10abc", 3000)]


async def test_received_streams_count_the_networks_loss_not_the_retransmissions() -> None:
    """Packets 4 and 7 of 20 are lost and come back retransmitted (RTX): the stream's
    own counters say 18 received and 2 lost, where aiortc's getStats() shows only the
    retransmission stream (its one inbound entry per receiver is overwritten)."""
    transport = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()),
                                 [RTCCertificate.generateCertificate()])
    receiver = RTCRtpReceiver("video", transport)
    codecs = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
    codecs[96] = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    codecs[97] = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=97,
                                       parameters={"apt": 96})
    receiver._RTCRtpReceiver__rtx_ssrc[2222] = 1111  # type: ignore[attr-defined]
    packets = {seq: RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 6000,
                              ssrc=1111, payload=b"\x10\x00\x00") for seq in range(1, 21)}
    for seq, packet in packets.items():
        if seq not in (4, 7):
            await receiver._handle_rtp_packet(packet, arrival_time_ms=seq * 66)
    for n, seq in enumerate((4, 7)):
        await receiver._handle_rtp_packet(
            wrap_rtx(packets[seq], payload_type=97, sequence_number=500 + n, ssrc=2222),
            arrival_time_ms=1400)

    (stream,) = media_tap.received_streams(receiver)
    assert (stream.ssrc, stream.packets_received, stream.packets_lost) == (1111, 18, 2)
    assert stream.clock_rate == 90000 and stream.jitter >= 0
    inbound = [s for s in (await receiver.getStats()).values() if s.type == "inbound-rtp"]
    assert [(s.ssrc, s.packetsLost) for s in inbound] == [(2222, 0)]  # why we read our own
