"""One site's WebRTC peer connections at the bridge: one for audio, one for video.

Audio and video travel in separate peer connections: with the receive paths
taken over (see `media_tap.py`), one connection carrying both was seen to
leave the video send tracks idle, while separate connections work.

Every connection answers the site's offer (the site is always the offerer),
is configured with the bridge's ICE settings, and carries DTLS-SRTP media
only (aiortc offers nothing else)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtp import RtpPacket

from bridge.ice_policy import Network, filter_candidates
from bridge.media_tap import on_keyframe_request, tap_audio, tap_video
from bridge.rtp_forwarder import RtpForwarder, VideoOutput
from bridge.sdp_precheck import MediaKind, OfferError, precheck_offer
from bridge.video_router import VideoSlot, VideoSource

log = logging.getLogger(__name__)

__all__ = ["IceSettings", "OfferError", "PeerSession"]


@dataclass(frozen=True)
class IceSettings:
    """What every bridge peer connection is built with."""

    configuration: RTCConfiguration
    remote_networks: Sequence[Network] = ()
    # The Opus frame (ms) the audio answers ask sites to send (a=ptime, a=maxptime);
    # 20: nothing asked (setting bridge_site_audio_frame_ms).
    site_audio_frame_ms: int = 20


def _vp8_only() -> list[object]:
    # Forwarding without transcoding needs every site on one codec: VP8 (+ RTX).
    return [c for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.lower() in ("video/vp8", "video/rtx")]


def _parse(sdp: object, ice: IceSettings, kind: MediaKind, max_media: int
           ) -> RTCSessionDescription:
    # The cheap line scan first: aiortc's parser costs the loop time per line and candidate.
    text = precheck_offer(sdp, kind, max_media)
    return RTCSessionDescription(sdp=filter_candidates(text, ice.remote_networks), type="offer")


def ask_ptime(sdp: str, frame_ms: int) -> str:
    """`sdp` (an answer of one audio media line) asking the site for Opus packets of
    `frame_ms`: `a=ptime` (preferred) and `a=maxptime` (the longest accepted), RFC 4566.
    Fewer, longer packets cost the bridge less to receive (docs/performance.md)."""
    if frame_ms == 20:
        return sdp
    end = "" if sdp.endswith("\r\n") else "\r\n"
    return f"{sdp}{end}a=ptime:{frame_ms}\r\na=maxptime:{frame_ms}\r\n"


@dataclass
class PeerSession:
    """A site's connections; replaced as a whole when the site reconnects."""

    code: str
    ice: IceSettings
    on_failed: Callable[[PeerSession], None]
    audio_pc: RTCPeerConnection | None = None
    video_pc: RTCPeerConnection | None = None
    audio_out: RtpForwarder | None = None
    slots: list[VideoSlot] = field(default_factory=list)
    closed: bool = False
    # The RTP clock of the audio the bridge sends (Opus: 48 kHz; a SIP room's G.711 or
    # G.722: 8 kHz), for the jitter its receiver reports give in clock units.
    audio_clock: int = 48_000

    def _new_pc(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(self.ice.configuration)

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "failed" and not self.closed:
                self.on_failed(self)

        return pc

    async def answer_audio(self, sdp: object, on_packet: Callable[[RtpPacket], None]) -> str:
        """Answer the audio offer: the site's microphone in, the mix out."""
        offer = _parse(sdp, self.ice, "audio", 1)
        if self.audio_pc is not None:
            raise OfferError("audio is already connected; reconnect to renegotiate")
        pc = self.audio_pc = self._new_pc()
        try:
            await pc.setRemoteDescription(offer)
        except Exception as exc:  # aiortc's parser fails in assorted ways on odd SDP
            raise OfferError(f"malformed SDP offer: {str(exc)[:200]}") from None
        transceivers = pc.getTransceivers()
        if len(transceivers) != 1 or transceivers[0].kind != "audio":
            raise OfferError("the audio offer must have exactly one audio media line")
        transceiver = transceivers[0]
        tap_audio(transceiver.receiver, on_packet)
        self.audio_out = RtpForwarder(transceiver.sender)
        transceiver.direction = "sendrecv"
        return ask_ptime(await self._answer(pc), self.ice.site_audio_frame_ms)

    async def answer_video(self, sdp: object, source: VideoSource | None,
                           slot_names: Sequence[str]) -> tuple[str, list[VideoSlot]]:
        """Answer the video offer: the site's camera in (first line), one slot per line out.

        Without a `source` (a moderator's console) nothing comes in: every line
        only carries a slot out. Returns the answer and the slots in media-line
        order; the caller decides what each slot shows."""
        offer = _parse(sdp, self.ice, "video", len(slot_names))
        if self.video_pc is not None:
            raise OfferError("video is already connected; reconnect to renegotiate")
        pc = self.video_pc = self._new_pc()
        try:
            await pc.setRemoteDescription(offer)
        except Exception as exc:  # aiortc's parser fails in assorted ways on odd SDP
            raise OfferError(f"malformed SDP offer: {str(exc)[:200]}") from None
        transceivers = pc.getTransceivers()
        if not transceivers or any(t.kind != "video" for t in transceivers):
            raise OfferError("the video offer must have only video media lines")
        if len(transceivers) > len(slot_names):
            raise OfferError(f"the video offer has {len(transceivers)} media lines; "
                             f"at most {len(slot_names)} for this site")
        for index, transceiver in enumerate(transceivers):
            transceiver.setCodecPreferences(_vp8_only())  # type: ignore[arg-type]
            slot = VideoSlot(slot_names[index], VideoOutput(RtpForwarder(transceiver.sender)))
            on_keyframe_request(transceiver.sender, slot.keyframe_wanted)
            if index == 0 and source is not None:
                source.attach(transceiver.receiver)
                tap_video(transceiver.receiver, source.on_frame, source.learn_ssrc)
                transceiver.direction = "sendrecv"
            else:
                transceiver.direction = "sendonly"
            self.slots.append(slot)
        return await self._answer(pc), list(self.slots)

    async def _answer(self, pc: RTCPeerConnection) -> str:
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)  # aiortc gathers all candidates here
        return str(pc.localDescription.sdp)

    async def close(self) -> None:
        """Close both connections and stop every slot."""
        self.closed = True
        for slot in self.slots:
            slot.close()
        for pc in (self.audio_pc, self.video_pc):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pc.close(), 5)
