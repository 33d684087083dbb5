"""Reaching into aiortc's receive and send paths (private API, pinned to aiortc 1.16.0).

The bridge never decodes video and decodes only the few loudest audio
streams, so it takes media off aiortc's normal receive path:

- audio: `RTCRtpReceiver._handle_rtp_packet` is replaced per receiver; the
  bridge sees each decrypted `RtpPacket` (its RFC 6464 level and Opus
  payload) and aiortc does nothing more with it (no jitter buffer, no
  decoder) but count it in its per-SSRC statistics, from which its RTCP loop
  sends the site receiver reports. Once the connection receives by callback
  (`bridge/datagram_tap.py`), the packets of an SSRC aiortc's router knows
  skip even that handler: they reach the tap's callback synchronously,
  parsed by `bridge/lean_rtp.py` (only the audio level of the extensions);
- video: `RTCRtpReceiver._handle_rtp_packet` is replaced per receiver by
  `VideoIngest.handle` (and, on the callback path, by its synchronous
  `VideoIngest.receive`, parsed by `bridge/lean_rtp.py`), which keeps aiortc's
  statistics (receiver reports), NACKs and REMB (two parts of aiortc's
  estimator swapped for cheaper ones giving the same figures,
  `tune_bitrate_estimator`) and re-assembles frames itself
  (`bridge/vp8_assembler.py`)
  for the bridge, on the event-loop thread; the receiver's decoder queue is a
  sink, so its decoder thread exits at once;
- a payload type aiortc does not know (telephone-event) routed to a receiver anyway;
- keyframe requests: `RTCRtpSender._send_keyframe` is replaced per sender so
  a site's PLI reaches the source of what it is watching;
- call quality: the sender's round-trip time, the far end's jitter (from its
  RTCP receiver reports) and the bytes sent, read for the metrics;
- a stuck video receiver (the agent's, which decodes): its packet count, and a
  restart of its jitter buffer with a keyframe request;
- the agent's call figures: each received stream's own counters (aiortc's
  `getStats()` gives one inbound entry per receiver, which its retransmission
  stream's figures overwrite as soon as one packet is retransmitted). aiortc's video jitter
  buffer holds 512 packets and, after a loss nobody retransmits (a network
  outage of a few seconds), outputs nothing until that many more have
  arrived: tens of seconds of frozen picture at a district's bitrate.

`tests/test_media_tap.py` (for the estimator, `tests/test_remb_estimator.py` and
`tests/test_rate_window.py`) checks each of these hooks, so an aiortc upgrade
that moves them fails loudly instead of silently breaking media."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiortc.rtcrtpreceiver as rtcrtpreceiver
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.codecs import is_rtx
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rate import MIN_FRAME_PERIOD_HISTORY_LENGTH, RemoteBitrateEstimator
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)

from bridge.inline_coroutine import run_now
from bridge.rate_window import RateWindow
from bridge.sliding_minimum import SlidingMinimum
from bridge.vp8_assembler import Vp8FrameAssembler

PINNED_AIORTC = "1.16.0"
REMB_INTERVAL_MS = 1000  # a steady estimate goes to the site once a second
REMB_DECREASE = 0.97  # an estimate 3 % below the last one sent goes at once
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
# On a receiver tapped with `tap_audio` or `tap_video`: its synchronous callback for one
# parsed packet, which `datagram_tap` calls directly.
PACKET_TAP = "_vcbridge_packet_tap"


_original_decoder_worker = rtcrtpreceiver.decoder_worker


class EncodedFrameSink:
    """Stands in for a receiver's decoder queue: encoded frames go to `on_frame`."""

    def __init__(self, on_frame: Callable[[bytes, int], None]) -> None:
        self._on_frame = on_frame

    def put(self, item: Any) -> None:
        if item is None:  # the receiver stopping
            return
        _codec, frame = item
        self._on_frame(frame.data, frame.timestamp)


def _decoder_worker(loop: Any, input_q: Any, output_q: Any, decode_error: Any) -> None:
    # A receiver whose queue is our sink needs no decoder thread: return at once.
    if isinstance(input_q, EncodedFrameSink):
        return
    _original_decoder_worker(loop, input_q, output_q, decode_error)


rtcrtpreceiver.decoder_worker = _decoder_worker


def tap_video(receiver: RTCRtpReceiver, on_frame: Callable[[bytes, int], None],
              on_ssrc: Callable[[int], None]) -> VideoIngest:
    """Send `receiver`'s encoded frames (VP8 data, 90 kHz timestamp) to `on_frame`.

    Must be called before the receiver starts (right after the remote
    description is applied). `on_ssrc` learns the source SSRC, for PLIs.
    Packets go through `VideoIngest`, not aiortc's receive path: synchronously from
    the datagram callback once the connection receives by callback
    (`bridge/datagram_tap.py`), through `_handle_rtp_packet` until then."""
    # The decoder thread, started with this queue, exits at once (`_decoder_worker`).
    receiver._RTCRtpReceiver__decoder_queue = EncodedFrameSink(on_frame)  # type: ignore[attr-defined]
    ingest = VideoIngest(receiver, on_frame, on_ssrc)
    receiver._handle_rtp_packet = ingest.handle  # type: ignore[method-assign]
    receiver.__dict__[PACKET_TAP] = ingest.receive
    return ingest


def tap_video_any_codec(receiver: RTCRtpReceiver, on_frame: Callable[[bytes, int], None],
                        on_ssrc: Callable[[int], None]) -> None:
    """Like `tap_video`, for a stream that may not be VP8 (a SIP room's H.264): aiortc's
    own receive path depacketises by codec and hands each frame to `on_frame`.

    Costs aiortc's jitter buffer per packet, which `VideoIngest` saves the sites' VP8."""
    receiver._RTCRtpReceiver__decoder_queue = EncodedFrameSink(on_frame)  # type: ignore[attr-defined]
    original = receiver._handle_rtp_packet
    seen: set[int] = set()

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        if packet.ssrc not in seen:
            seen.add(packet.ssrc)
            on_ssrc(packet.ssrc)
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]


class VideoIngest:
    """A forwarded site's video packets, handled with the least work the bridge needs.

    Replaces `RTCRtpReceiver._handle_rtp_packet` for a source the bridge only
    forwards. Kept from aiortc's path, with aiortc's own objects, so the site sees
    the same RTCP as before: the per-stream statistics its receiver reports
    come from, NACKs for missing packets (and retransmissions unwrapped from
    RTX), and REMB from aiortc's bandwidth estimator. Left out: the payload
    parse into objects, the 512-packet jitter buffer and the active-SSRC clock
    reading (only `getSynchronizationSources` reads it). The estimator is fed
    once per frame (at its marker packet, with the frame's bytes) instead of
    once per packet: a frame's packets leave the site in one burst with the
    same send time, so they form one of the estimator's 5 ms groups either
    way, and its deltas are taken between groups. Its estimates go to the site
    once a second, or at once when they fall by 3 % (libwebrtc's REMB rule),
    not about five times a second as aiortc sends them; its incoming-bitrate
    counter is `rate_window.RateWindow`, the same figures at a cost per frame
    instead of per millisecond, and its minimum frame period comes from
    `sliding_minimum.SlidingMinimum` (`tune_bitrate_estimator`). Frames are re-assembled by
    `Vp8FrameAssembler`; when it gives up a loss, the source is asked for a
    keyframe (PLI), as aiortc's jitter buffer does when it overflows."""

    def __init__(self, receiver: RTCRtpReceiver, on_frame: Callable[[bytes, int], None],
                 on_ssrc: Callable[[int], None]) -> None:
        self._receiver = receiver
        self._on_frame = on_frame
        self._on_ssrc = on_ssrc
        self._state: dict[str, Any] = receiver.__dict__
        self._assemblers: dict[int, Vp8FrameAssembler] = {}
        self._remb_bytes = 0
        estimator = self._state["_RTCRtpReceiver__remote_bitrate_estimator"]
        if estimator is not None:
            tune_bitrate_estimator(estimator)
        self._remb_sent_ms = -REMB_INTERVAL_MS
        self._remb_sent_bitrate = 0

    @property
    def assemblers(self) -> dict[int, Vp8FrameAssembler]:
        """Each source SSRC's frame assembler (for its counters)."""
        return self._assemblers

    async def handle(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """What `RTCRtpReceiver._handle_rtp_packet` does, less (see the class)."""
        self.receive(packet, arrival_time_ms)

    def receive(self, packet: RtpPacket, arrival_time_ms: int | None = None) -> None:
        """Take one packet, in the caller's call (the RTCP it causes is sent at once).
        `arrival_time_ms` (NTP epoch, as aiortc's clock) is read now if not given."""
        receiver, state = self._receiver, self._state
        if not receiver._enabled:
            return
        codec = state["_RTCRtpReceiver__codecs"].get(packet.payload_type)
        if codec is None:
            return
        count_received(state["_RTCRtpReceiver__remote_streams"], packet, codec.clockRate)
        if is_rtx(codec):
            original_ssrc = state["_RTCRtpReceiver__rtx_ssrc"].get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if (original_ssrc is None or len(packet.payload) < 2
                    or apt not in state["_RTCRtpReceiver__codecs"]):
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
        elif packet.extensions.abs_send_time is not None:
            self._remb_bytes += len(packet.payload) + packet.padding_size
            if packet.marker:
                self._feed_estimator(packet, arrival_time_ms)
        assembler = self._assemblers.get(packet.ssrc)
        if assembler is None:
            assembler = self._assemblers[packet.ssrc] = Vp8FrameAssembler()
            self._on_ssrc(packet.ssrc)
        nacks = state["_RTCRtpReceiver__nack_generator"]
        if nacks is not None and nacks.add(packet):
            run_now(receiver._send_rtcp_nack(packet.ssrc, sorted(nacks.missing)))
        if not packet.payload:
            return
        try:
            frames, lost = assembler.add(packet.sequence_number, packet.timestamp,
                                         bool(packet.marker), packet.payload)
        except (IndexError, ValueError):
            return  # a malformed payload descriptor: dropped, as aiortc drops it
        if frames:
            mapper = state["_RTCRtpReceiver__timestamp_mapper"]
            for data, timestamp in frames:
                self._on_frame(data, mapper.map(timestamp))
        if lost:
            run_now(receiver._send_rtcp_pli(packet.ssrc))

    def _feed_estimator(self, packet: RtpPacket, arrival_time_ms: int | None) -> None:
        size, self._remb_bytes = self._remb_bytes, 0
        estimator = self._state["_RTCRtpReceiver__remote_bitrate_estimator"]
        if estimator is None:
            return
        if arrival_time_ms is None:
            arrival_time_ms = ntp_now_ms()
        remb = estimator.add(abs_send_time=packet.extensions.abs_send_time,
                             arrival_time_ms=arrival_time_ms, payload_size=size,
                             ssrc=packet.ssrc)
        rtcp_ssrc = self._state["_RTCRtpReceiver__rtcp_ssrc"]
        if rtcp_ssrc is None or remb is None:
            return
        # aiortc would send every estimate (about five a second); as libwebrtc, send one
        # a second, and at once when the estimate falls (the site must slow down now).
        bitrate = remb[0]
        if (arrival_time_ms - self._remb_sent_ms < REMB_INTERVAL_MS
                and bitrate >= self._remb_sent_bitrate * REMB_DECREASE):
            return
        self._remb_sent_ms, self._remb_sent_bitrate = arrival_time_ms, bitrate
        run_now(self._receiver._send_rtcp(RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb))))


def tune_bitrate_estimator(estimator: RemoteBitrateEstimator) -> None:
    """Make aiortc's REMB estimator cheaper per frame, with the same estimates.

    Two of its parts are swapped, on this instance only, for ones that give the
    same figures at a cost per frame: the incoming-bitrate counter (aiortc's
    clears a 1 ms bucket per elapsed millisecond) and the overuse estimator's
    minimum frame period (aiortc's scans its last 60 frame intervals). Measured
    per `add()` of a frame (6 Dec 2026, process time, 90 s of a 15 fps camera):
    18.4 µs with the counter alone swapped, 10.3 µs with both.
    tests/test_remb_estimator.py feeds a stock and a tuned estimator the same
    frames and compares every REMB."""
    # The same figures as aiortc's 1 ms-bucket counter, without its loop per ms.
    estimator.incoming_bitrate = RateWindow(1000, 8000)  # type: ignore[assignment]
    # The same minimum as aiortc's scan of its history list, without the scan; the
    # instance attribute is found before the class's method.
    estimator.estimator.update_min_frame_period = SlidingMinimum(  # type: ignore[method-assign,assignment]
        MIN_FRAME_PERIOD_HISTORY_LENGTH).update


def ntp_now_ms() -> int:
    """aiortc's `clock.current_ms()` (milliseconds since the NTP epoch, 1900), without
    its datetime arithmetic: a packet's arrival time, for the REMB estimator."""
    return int((time.time() + NTP_EPOCH_OFFSET) * 1000)


def count_received(streams: dict[int, Any], packet: RtpPacket, clock_rate: int) -> None:
    """Count `packet` in aiortc's statistics of its SSRC (`streams`: a receiver's
    `__remote_streams`), which its RTCP loop sends receiver reports from; `clock_rate`
    starts the statistics of an SSRC seen for the first time."""
    stream = streams.get(packet.ssrc)
    if stream is None:
        stream = streams[packet.ssrc] = rtcrtpreceiver.StreamStatistics(clock_rate)
    stream.add(packet)


def tap_audio(receiver: RTCRtpReceiver, on_packet: Callable[[RtpPacket], None]) -> None:
    """Hand every decrypted audio RTP packet of `receiver` to `on_packet`, instead of
    aiortc's jitter buffer and decoder; the bridge keeps its own counters for the mix.

    Packets received by callback come to `on_packet` without a coroutine and with
    only the audio level of their header extensions decoded (`PACKET_TAP`, read by
    `datagram_tap`); those aiortc's own receive loop still delivers (before the
    callback path is installed, the first packet of an SSRC unknown to the router)
    come through `_handle_rtp_packet`, fully parsed.

    Each packet is still counted in aiortc's own statistics of its SSRC (1.2 µs), so
    the receiver's RTCP loop sends the site receiver reports on its audio, as RFC 3550
    asks: the loss, jitter and round trip of the site's microphone stream, which a
    browser's Opus adapts to (in-band FEC, bitrate) and the agent reports."""
    state = receiver.__dict__
    state["_RTCRtpReceiver__decoder_queue"] = EncodedFrameSink(lambda _d, _t: None)
    streams: dict[int, Any] = state["_RTCRtpReceiver__remote_streams"]
    codecs: dict[int, Any] = state["_RTCRtpReceiver__codecs"]

    def counted(packet: RtpPacket) -> None:
        stream = streams.get(packet.ssrc)
        if stream is not None:
            stream.add(packet)
        elif (codec := codecs.get(packet.payload_type)) is not None:
            count_received(streams, packet, codec.clockRate)
        # else: a telephone-event before any audio of its SSRC, whose clock is not known yet
        on_packet(packet)

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        counted(packet)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]
    state[PACKET_TAP] = counted


def route_payload_type(receiver: RTCRtpReceiver, payload_type: int) -> None:
    """Also give `receiver` the packets of `payload_type`, a codec aiortc does not know
    (RFC 4733 telephone-event from a SIP room system): aiortc's router drops a packet
    whose payload type no receiver registered, even on a known SSRC. Call after the
    remote description is applied."""
    router = receiver.transport._rtp_router
    router.payload_type_table.setdefault(payload_type, set()).add(receiver)


async def request_keyframe(receiver: RTCRtpReceiver, ssrc: int) -> None:
    """Send a PLI for `ssrc` to the site that sends it."""
    await receiver._send_rtcp_pli(ssrc)


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` when the far end of `sender` asks for a keyframe (PLI/FIR)."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


def sender_figures(sender: RTCRtpSender) -> tuple[float | None, int | None, int]:
    """What aiortc's sender learnt from the far end's RTCP receiver reports: the round-trip
    time (seconds), the far end's jitter (RTP clock units), and the bytes it sent."""
    rtt: float | None = sender._RTCRtpSender__rtt  # type: ignore[attr-defined]
    jitter: int | None = None
    for stats in sender._RTCRtpSender__stats.values():  # type: ignore[attr-defined]
        if stats.type == "remote-inbound-rtp":
            jitter = stats.jitter
    octets: int = sender._RTCRtpSender__octet_count  # type: ignore[attr-defined]
    return rtt, jitter, octets


@dataclass(frozen=True)
class ReceivedStream:
    """One media stream a receiver takes in (not a retransmission stream), cumulative."""

    ssrc: int
    packets_received: int
    packets_lost: int  # expected by sequence number minus received (RFC 3550), ≥ 0
    jitter: int  # interarrival jitter, in RTP clock units
    clock_rate: int


def received_streams(receiver: RTCRtpReceiver) -> list[ReceivedStream]:
    """The media streams `receiver` has taken in so far, retransmission (RTX) streams left
    out: a retransmitted packet is not counted as received, so the loss is the network's."""
    streams = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    rtx: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
    return [ReceivedStream(ssrc, int(stream.packets_received), max(int(stream.packets_lost), 0),
                           int(stream.jitter), int(stream._clockrate))
            for ssrc, stream in list(streams.items()) if ssrc not in rtx]


def packets_received(receiver: RTCRtpReceiver) -> int:
    """RTP packets `receiver` has taken in so far (all its sources)."""
    streams = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    return sum(int(stream.packets_received) for stream in streams.values())


async def restart_video_receiver(receiver: RTCRtpReceiver) -> None:
    """Forget what `receiver`'s jitter buffer waits for and ask its sources for a keyframe,
    so decoding starts again from the next keyframe instead of 512 packets later."""
    old: JitterBuffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    receiver._RTCRtpReceiver__jitter_buffer = JitterBuffer(  # type: ignore[attr-defined]
        capacity=old.capacity, is_video=True)
    receiver._RTCRtpReceiver__nack_generator = rtcrtpreceiver.NackGenerator()  # type: ignore[attr-defined]
    for ssrc in list(receiver._RTCRtpReceiver__remote_streams):  # type: ignore[attr-defined]
        await receiver._send_rtcp_pli(ssrc)


def is_vp8_keyframe(frame: bytes) -> bool:
    """True when a VP8 frame is a key frame (RFC 6386: P bit of the frame tag is 0)."""
    return bool(frame) and not frame[0] & 0x01
