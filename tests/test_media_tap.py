"""The aiortc internals the bridge relies on are still where it expects them.

If one of these fails after an aiortc upgrade, read bridge/media_tap.py and
adapt it before letting the upgrade in."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import aiortc.rtcrtpreceiver as rtcrtpreceiver
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder

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


def test_sender_hooks_exist_with_the_expected_shape() -> None:
    assert list(inspect.signature(RTCRtpSender._send_keyframe).parameters) == ["self"]
    source = inspect.getsource(RTCRtpSender._next_encoded_frame)
    # Pre-encoded packets go through pack(), not the encoder.
    assert "self.__encoder.pack(data)" in source
    assert list(inspect.signature(Vp8Encoder.pack).parameters) == ["self", "packet"]
    assert list(inspect.signature(OpusEncoder.pack).parameters) == ["self", "packet"]


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
