"""One SIP room system's media in the room: a single WebRTC peer connection to Janus's
SIP plugin, which bridges it to the room system's plain RTP.

The leg is a site of the room like any other (the room seats it with `Room.connect_sip`):
in the roll call, the mix, the floor and the chair's grid. What differs from a browser or
an agent:

- one peer connection carries audio and video (Janus's SIP plugin bridges one), and the
  bridge offers (dial-out: `create_offer`, then `accept_answer`) or answers (dial-in:
  `answer_offer`);
- the room system's audio is G.722, G.711 or Opus, without RFC 6464 levels: the leg
  decodes every packet on arrival, measures its level for the active speaker, and hands
  the samples to the mixer; it gets its mix encoded in the codec it negotiated (Opus
  sites get the common Opus packets as everyone else);
- its keypad arrives as RFC 4733 telephone-events in the audio stream (or, through the
  gateway, as SIP INFO: `dtmf`); `*1` asks for the floor;
- it receives one video stream, the "sip" slot: the main video (the floor holder or
  the active speaker), else the chair; its camera is a source like any site's, so it shows
  in the chair's grid. Keyframe requests go both ways through the usual hooks: a PLI from
  the room reaches the source it watches, the bridge's PLI reaches the room through Janus.

VP8 video is forwarded as for other sites (received by the same lean ingest). A room
that answers H.264 (offered when the leg is built with `h264=True`, one profile only)
has its video transcoded for it alone (`h264_transcoder.py`; the choice is explained in
docs/sip.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiortc import RTCRtpSender, RTCSessionDescription
from aiortc.rtp import RtpPacket

from bridge import control_messages as messages
from bridge import floor_control as floor
from bridge.audio_mixer import DecodedPcm
from bridge.ice_policy import filter_candidates
from bridge.media_tap import (
    on_keyframe_request,
    route_payload_type,
    tap_audio,
    tap_video,
    tap_video_any_codec,
)
from bridge.opus_codec import Pcm
from bridge.peer_session import PeerSession
from bridge.rtp_forwarder import RtpForwarder, VideoOutput
from bridge.sip.audio_codecs import (
    CODECS,
    OpusLevelDecoder,
    SharedMixEncoder,
    SipAudioCodec,
    SipAudioDecoder,
    SipAudioEncoder,
    UpsampledPcm,
    Upsampler,
    level_of,
)
from bridge.sip.h264_transcoder import H264Output, H264Source
from bridge.sip.sdp_munging import (
    NegotiatedMedia,
    SipMediaError,
    add_telephone_event,
    read_answer,
    with_inactive_rejections,
)
from bridge.video_router import VideoSlot, VideoSource

if TYPE_CHECKING:
    from bridge.room import Room, SiteConnection

log = logging.getLogger(__name__)

__all__ = ["NegotiatedMedia", "SipLeg", "SipMediaError"]

FLOOR_SEQUENCE = "*1"  # the keypad's "ask for the floor" (docs/sip.md)
DTMF_SEQUENCE_WINDOW = 3.0  # seconds between the two keys of a sequence
DTMF_EVENTS = "0123456789*#ABCD"  # RFC 4733 event codes 0-15

Hangup = Callable[[str], Awaitable[None] | None]


def video_preferences(h264: bool) -> list[Any]:
    """The video codecs a leg offers: VP8, and one H.264 profile (42e01f, packetization
    mode 1) when the room may need it, each with its RTX."""
    chosen = []
    for codec in RTCRtpSender.getCapabilities("video").codecs:
        mime = codec.mimeType.lower()
        if mime == "video/vp8" or mime == "video/rtx" or (mime == "video/h264" and h264 and (
                codec.parameters.get("profile-level-id") == "42e01f"
                and str(codec.parameters.get("packetization-mode")) == "1")):
            chosen.append(codec)
    return chosen


class SipPcmOutput:
    """A SIP site's mix: encoded in its codec and sent on its audio stream. The common mix
    comes from the room's shared encoding of its codec; its own mix-minus (while it
    speaks) from its own encoder."""

    def __init__(self, forwarder: RtpForwarder, encoder: SipAudioEncoder,
                 shared: SharedMixEncoder) -> None:
        self.forwarder = forwarder
        self.encoder = encoder
        self.shared = shared
        self._timestamp = 0

    def push_pcm(self, pcm: Pcm, pts: int, common: bool) -> bool:
        """Encode one frame of the mix and send it (the RTP clock is the codec's own)."""
        payload = self.shared.encode(pcm, pts) if common else self.encoder.encode(pcm)
        self._timestamp += self.encoder.rtp_samples
        return self.forwarder.send_chunks(self._timestamp, (payload,))


@dataclass
class SipPeerSession(PeerSession):
    """The leg's one peer connection (kept as `audio_pc`), closed by the room as any
    site's; `closers` stop what the leg runs beside it (the H.264 transcoders)."""

    closers: list[Callable[[], None]] = field(default_factory=list)

    async def close(self) -> None:
        """Close the connection, then the leg's workers."""
        await super().close()
        for closer in self.closers:
            closer()
        self.closers.clear()


@dataclass
class AudioCounters:
    """What the leg saw of the room's audio."""

    decoded: int = 0
    decode_errors: int = 0
    unexpected_payload_types: int = 0  # packets of a type the room did not negotiate
    telephone_events: int = 0


class SipLeg:
    """A SIP room system's media in a room (made by `Room.connect_sip`)."""

    def __init__(self, room: Room, code: str, on_hangup: Hangup | None = None, *,
                 h264: bool = True) -> None:
        self.room = room
        self.code = code
        self.on_hangup = on_hangup
        self.on_dtmf: Callable[[str], None] | None = None
        self.h264 = h264
        self.peers = SipPeerSession(code, room.ice, self._failed)
        self.connection: SiteConnection | None = None
        self.negotiated: NegotiatedMedia | None = None
        self.counters = AudioCounters()
        self.hung_up: str | None = None
        self._telephone_event: int | None = None
        self._decoder: SipAudioDecoder | OpusLevelDecoder | None = None
        self._upsampler: Upsampler | None = None  # G.711/G.722: to 48 kHz when mixed
        self._last_event: int | None = None  # RTP timestamp of the last DTMF event
        self._keys: list[tuple[str, float]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._video_receiver: Any = None
        self._video_forwarder: RtpForwarder | None = None
        self._video_ssrc: int | None = None
        self._source: VideoSource | None = None
        self._h264_out: H264Output | None = None

    # -- negotiation --------------------------------------------------------------

    def _build(self) -> None:
        if self.peers.audio_pc is not None:
            raise SipMediaError("malformed", "this leg is already negotiated")
        pc = self.peers._new_pc()
        self.peers.audio_pc = pc

    def _wire(self) -> None:
        """Taps and outputs on the transceivers (audio first, then video)."""
        pc = self.peers.audio_pc
        assert pc is not None
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio" and self.peers.audio_out is None:
                tap_audio(transceiver.receiver, self._on_audio_packet)
                self.peers.audio_out = RtpForwarder(transceiver.sender)
                transceiver.direction = "sendrecv"
            elif transceiver.kind == "video" and not self.peers.slots:
                transceiver.setCodecPreferences(video_preferences(self.h264))
                # What arrives is only known from the answer (VP8 or H.264): until then
                # aiortc's own depacketiser, which knows both; `_start_video` moves a VP8
                # room to the sites' lean ingest.
                tap_video_any_codec(transceiver.receiver, self._on_video_frame,
                                    self._on_video_ssrc)
                self._video_receiver = transceiver.receiver
                self._video_forwarder = RtpForwarder(transceiver.sender)
                slot = VideoSlot("sip", VideoOutput(self._video_forwarder))
                on_keyframe_request(transceiver.sender, self._keyframe_wanted)
                self.peers.slots.append(slot)
                transceiver.direction = "sendrecv"

    async def create_offer(self) -> str:
        """The bridge's offer for dial-out (to send to Janus's SIP plugin, non-trickle)."""
        self._build()
        pc = self.peers.audio_pc
        assert pc is not None
        pc.addTransceiver("audio", direction="sendrecv")
        pc.addTransceiver("video", direction="sendrecv")
        self._wire()
        await pc.setLocalDescription(await pc.createOffer())  # gathers the candidates
        offer, self._telephone_event = add_telephone_event(str(pc.localDescription.sdp))
        return offer

    async def accept_answer(self, answer: str) -> None:
        """Apply the room system's answer (from Janus); raises SipMediaError."""
        pc = self.peers.audio_pc
        if pc is None or pc.signalingState != "have-local-offer":
            raise SipMediaError("malformed", "no offer is waiting for an answer")
        text, negotiated = read_answer(answer)
        text = filter_candidates(text, self.room.ice.remote_networks)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="answer"))
        except Exception as exc:  # aiortc's parser fails in assorted ways on odd SDP
            raise SipMediaError("malformed", f"unusable answer: {str(exc)[:200]}") from None
        self._start(negotiated)

    async def answer_offer(self, offer: str) -> str:
        """Answer a room system's call (dial-in): returns the answer for Janus."""
        if not isinstance(offer, str) or not offer.startswith("v=0"):
            raise SipMediaError("malformed", "the offer is not an SDP description")
        self._build()
        pc = self.peers.audio_pc
        assert pc is not None
        text = filter_candidates(with_inactive_rejections(offer), self.room.ice.remote_networks)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="offer"))
        except Exception as exc:
            raise SipMediaError("malformed", f"unusable offer: {str(exc)[:200]}") from None
        kinds = [t.kind for t in pc.getTransceivers()]
        if kinds.count("audio") != 1:
            raise SipMediaError("malformed", "the offer must have exactly one audio line")
        self._wire()
        await pc.setLocalDescription(await pc.createAnswer())
        answer = str(pc.localDescription.sdp)
        _text, negotiated = read_answer(answer)
        offered_event = _telephone_event_of(offer)
        if offered_event is not None:
            answer = _with_telephone_event(answer, offered_event)
            negotiated = NegotiatedMedia(
                negotiated.audio, negotiated.audio_payload_type, offered_event,
                negotiated.video, negotiated.video_payload_type)
        self._start(negotiated)
        return answer

    def _start(self, negotiated: NegotiatedMedia) -> None:
        """The media flow as negotiated: the audio into the mixer, the video routed."""
        self.negotiated = negotiated
        self._telephone_event = negotiated.telephone_event
        engine = self.room.audio
        assert self.peers.audio_out is not None
        if negotiated.telephone_event is not None:
            route_payload_type(self._audio_receiver(), negotiated.telephone_event)
        if negotiated.audio == "opus":
            self._decoder = OpusLevelDecoder()
            engine.add_decoded_site(self.code, self.peers.audio_out, DecodedPcm())
        else:
            codec = CODECS[negotiated.audio]
            self.peers.audio_clock = codec.rtp_clock
            self._decoder = SipAudioDecoder(codec)
            self._upsampler = Upsampler(codec.sample_rate)
            output = SipPcmOutput(self.peers.audio_out,
                                  SipAudioEncoder(codec, engine.frame_samples),
                                  self._shared_encoder(codec))
            engine.add_decoded_site(self.code, output, UpsampledPcm(codec.sample_rate))
        self._start_video(negotiated.video)
        if self.connection is not None:
            self.room.sip_media_started(self.connection)

    def _shared_encoder(self, codec: SipAudioCodec) -> SharedMixEncoder:
        encoders = self.room.shared_mix_encoders
        shared = encoders.get(codec.name)
        if shared is None:
            shared = encoders[codec.name] = SharedMixEncoder(codec, self.room.audio.frame_samples)
        return shared

    def _start_video(self, codec: str | None) -> None:
        source: VideoSource
        if codec == "VP8":
            source = VideoSource(self.code)
            assert self._video_receiver is not None
            tap_video(self._video_receiver, self._on_video_frame, self._on_video_ssrc)
        elif codec == "H264" and self._video_forwarder is not None:
            source = H264Source(self.code)
            self._h264_out = H264Output(self._video_forwarder)
            self.peers.closers += [source.close, self._h264_out.close]
            for slot in self.peers.slots:
                slot.output = self._h264_out
        else:
            # No video (an audio-only room, or no common video codec): nothing to show it,
            # and its camera is no source.
            for slot in self.peers.slots:
                slot.close()
            self.peers.slots.clear()
            self.room.sources.pop(self.code, None)
            return
        assert self._video_receiver is not None
        source.attach(self._video_receiver)
        if self._video_ssrc is not None:
            source.learn_ssrc(self._video_ssrc)
        self._source = source
        self.room.sources[self.code] = source  # replaces a previous call's source

    # -- video ------------------------------------------------------------------------

    def _on_video_frame(self, data: bytes, timestamp: int) -> None:
        source = self._source
        if isinstance(source, H264Source):
            source.on_h264(data, timestamp)
        elif source is not None:
            source.on_frame(data, timestamp)

    def _on_video_ssrc(self, ssrc: int) -> None:
        self._video_ssrc = ssrc
        if self._source is not None:
            self._source.learn_ssrc(ssrc)

    def _keyframe_wanted(self) -> None:
        # The room system lost pictures (PLI): an IDR of our own when we transcode for
        # it, else the request goes to the source it watches.
        if self._h264_out is not None:
            self._h264_out.keyframe_wanted()
        else:
            for slot in self.peers.slots:
                slot.keyframe_wanted()

    # -- audio ------------------------------------------------------------------------

    def _audio_receiver(self) -> Any:
        pc = self.peers.audio_pc
        assert pc is not None
        return next(t.receiver for t in pc.getTransceivers() if t.kind == "audio")

    def _on_audio_packet(self, packet: RtpPacket) -> None:
        negotiated = self.negotiated
        if negotiated is None or self._decoder is None:
            return
        if packet.payload_type == self._telephone_event and packet.payload_type is not None:
            self._on_telephone_event(packet)
            return
        if packet.payload_type != negotiated.audio_payload_type:
            self.counters.unexpected_payload_types += 1  # never decoded as something else
            return
        try:
            pcm = self._decoder.decode(packet.payload)
        except ValueError:
            self.counters.decode_errors += 1
            return
        self.counters.decoded += 1
        queued = pcm.tobytes() if self._upsampler is None else self._upsampler.chunk(pcm)
        self.room.audio.on_decoded(self.code, packet.sequence_number, queued, level_of(pcm),
                                   len(packet.payload))

    def _on_telephone_event(self, packet: RtpPacket) -> None:
        payload = packet.payload
        if len(payload) < 4:
            return
        self.counters.telephone_events += 1
        if packet.timestamp == self._last_event:
            return  # the same key: RFC 4733 repeats an event's packets, and its end thrice
        self._last_event = packet.timestamp
        if payload[0] < len(DTMF_EVENTS):
            self.dtmf(DTMF_EVENTS[payload[0]])

    def dtmf(self, digit: str) -> None:
        """One key pressed at the room system (RFC 4733 here, or SIP INFO through the
        gateway). `*1` asks for the floor on the site's behalf."""
        if self.on_dtmf is not None:
            self.on_dtmf(digit)
        now = time.monotonic()
        self._keys = [(k, t) for k, t in self._keys if now - t < DTMF_SEQUENCE_WINDOW]
        self._keys.append((digit, now))
        typed = "".join(k for k, _t in self._keys)
        if typed.endswith(FLOOR_SEQUENCE):
            self._keys.clear()
            self._spawn(self._request_floor())

    async def _request_floor(self) -> None:
        with contextlib.suppress(floor.FloorError):  # already queued, holding, or locked out
            await self.room.control(self.code, messages.FloorRequest(type="floor.request"))

    # -- the end ----------------------------------------------------------------------

    async def notice(self, message: dict[str, Any]) -> None:
        """What the room says to this site's signaling channel; a SIP site has none, so a
        removal or the room's end hangs the call up (through the gateway's callback)."""
        kind = message.get("type")
        if kind in ("removed", "closed", "replaced") and self.hung_up is None:
            self.hung_up = str(kind)
            if self.on_hangup is not None:
                result = self.on_hangup(str(kind))
                if result is not None:
                    await result

    def _failed(self, peers: PeerSession) -> None:
        # ICE or DTLS with Janus failed: the room drops the site; the gateway hangs up.
        if self.connection is not None:
            self._spawn(self.room.disconnect_sip(self, left=False))

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Close the peer connection and the transcoders, if any."""
        await self.peers.close()


def _telephone_event_of(sdp: str) -> int | None:
    for line in sdp.splitlines():
        if line.startswith("a=rtpmap:") and "telephone-event/8000" in line:
            with contextlib.suppress(ValueError):
                return int(line[9:].split()[0])
    return None


def _with_telephone_event(answer: str, pt: int) -> str:
    lines = answer.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    in_audio = False
    for line in lines:
        if line.startswith("m="):
            in_audio = line.startswith("m=audio ")
            if in_audio:
                line += f" {pt}"
        out.append(line)
        if in_audio and line.startswith("a=rtpmap:") and "telephone-event" not in line:
            out.append(f"a=rtpmap:{pt} telephone-event/8000")
            out.append(f"a=fmtp:{pt} 0-16")
            in_audio = False
    return "\r\n".join(line for line in out if line) + "\r\n"
