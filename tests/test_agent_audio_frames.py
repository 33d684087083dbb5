"""60 ms Opus from a site when the bridge's answer asks for it (`bridge/agent/audio_frames.py`).

Real aiortc peers: the bridge's `PeerSession` answers with `a=ptime`/`a=maxptime`,
the site's sender follows it as the agent's `SiteClient` does, and the bridge's
tap sees 60 ms packets that its mixer decodes to 60 ms of audio. The first test
fails loudly when an aiortc upgrade moves what the longer frames rely on."""

from __future__ import annotations

import asyncio
import inspect
import itertools

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.opus import OpusEncoder
from aiortc.rtp import RtpPacket

from bridge.agent.audio_frames import LongFrameOpusEncoder, answered_ptime, send_opus_frames_of
from bridge.agent.generated_media import ToneTrack
from bridge.ice_policy import restrict_host_addresses
from bridge.opus_codec import OpusDecoder
from bridge.peer_session import IceSettings, PeerSession, ask_ptime


def test_the_sender_still_makes_its_encoder_only_when_none_is_set() -> None:
    source = inspect.getsource(RTCRtpSender._next_encoded_frame)
    assert "if self.__encoder is None:" in source
    assert "self.__encoder = get_encoder(codec)" in source
    assert "self.__encoder.encode, data, force_keyframe" in source
    init = inspect.getsource(OpusEncoder.__init__)
    assert "self.resampler = AudioResampler(" in init
    assert 'self.codec.options = {"application": "voip"}' in init
    assert "for frame in self.resampler.resample(frame):" in inspect.getsource(
        OpusEncoder.encode)


def test_the_answer_decides_the_frame() -> None:
    plain = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 opus/48000/2\r\n"
    assert answered_ptime(plain) == 20
    assert ask_ptime(plain, 20) == plain
    asked = ask_ptime(plain, 60)
    assert asked.endswith("a=ptime:60\r\na=maxptime:60\r\n")
    assert answered_ptime(asked) == 60
    assert answered_ptime(plain + "a=ptime:60\r\na=maxptime:40\r\n") == 40
    assert answered_ptime(plain + "a=ptime:30\r\n") == 20  # not an Opus frame: the next below
    assert answered_ptime(plain + "a=ptime:120\r\n") == 60


async def test_a_site_sends_60_ms_packets_when_the_bridge_asks() -> None:
    restrict_host_addresses(["127.0.0.1"])
    config = RTCConfiguration(iceServers=[])
    site = RTCPeerConnection(config)
    site.addTrack(ToneTrack(440))
    peers = PeerSession("TEST", IceSettings(config, site_audio_frame_ms=60), lambda _p: None)
    received: list[RtpPacket] = []
    try:
        await site.setLocalDescription(await site.createOffer())
        answer = await peers.answer_audio(site.localDescription.sdp, received.append)
        sender = site.getTransceivers()[0].sender
        frame_ms = answered_ptime(answer)
        assert frame_ms == 60
        send_opus_frames_of(sender, frame_ms)
        await site.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        for _ in range(250):
            if len(received) >= 12:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"only {len(received)} audio packets reached the bridge")
        assert isinstance(sender._RTCRtpSender__encoder, LongFrameOpusEncoder)  # type: ignore[attr-defined]
        steps = {(b.timestamp - a.timestamp) % 2**32 for a, b in itertools.pairwise(received)}
        assert steps == {2880}  # 60 ms apart on the 48 kHz clock
        decoder = OpusDecoder()
        assert {len(decoder.decode(p.payload)) for p in received} == {2880}
    finally:
        await site.close()
        await peers.close()
