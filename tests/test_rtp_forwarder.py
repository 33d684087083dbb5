"""The bridge's own send path (`bridge/rtp_forwarder.py`) between two real aiortc peers.

The first test fails loudly when an aiortc/aioice upgrade moves one of the
private names the forwarder uses; read bridge/rtp_forwarder.py and adapt it
before letting the upgrade in. The others send real VP8 frames through the
forwarder to an aiortc receiver on loopback, which must decode them, see one
continuous stream, and get a NACKed packet again (as RTX)."""

from __future__ import annotations

import asyncio
import inspect
import itertools
from importlib.metadata import version
from typing import Any

import aioice.ice
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from bridge import rtp_forwarder
from bridge.agent.generated_media import ColourCardTrack
from bridge.ice_policy import restrict_host_addresses
from bridge.media_tap import PINNED_AIORTC
from bridge.rtp_forwarder import EncodedFrame, RtpForwarder, VideoOutput, vp8_chunks
from tests.support import REQUIRE_ALL


def test_the_private_names_the_forwarder_uses_are_where_it_expects_them() -> None:
    assert version("aiortc") == PINNED_AIORTC
    assert version("aioice") == "0.13.0"
    # The counters aiortc's RTCP sender reports are built from, which we keep up to date.
    rtcp = inspect.getsource(RTCRtpSender._run_rtcp)
    for name in ("__ntp_timestamp", "__rtp_timestamp", "__packet_count", "__octet_count"):
        assert f"self.{name}" in rtcp
    # NACKs go through the per-instance `_retransmit`, which we replace.
    assert "await self._retransmit(seq)" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert list(inspect.signature(RTCRtpSender._retransmit).parameters) == [
        "self", "sequence_number"]
    # The sender's own RTP loop waits on the track (ours never yields) and starts in send().
    assert "await self.__track.recv()" in inspect.getsource(RTCRtpSender._next_encoded_frame)
    assert "self._run_rtp(parameters.codecs[0])" in inspect.getsource(RTCRtpSender.send)
    # SRTP session and state of the DTLS transport; how aiortc itself sends RTP.
    send_rtp = inspect.getsource(RTCDtlsTransport._send_rtp)
    assert "self._state != State.CONNECTED" in send_rtp
    assert "self._tx_srtp.protect(data)" in send_rtp
    assert "tx_policy.allow_repeat_tx = True" in inspect.getsource(RTCDtlsTransport)
    assert State.CONNECTED.name == "CONNECTED"
    # aioice: the nominated pair of component 1, and what sending on it does.
    assert "active_pair = self._nominated.get(component)" in inspect.getsource(
        aioice.ice.Connection.sendto)
    assert "self.transport.sendto(data, addr)" in inspect.getsource(
        aioice.ice.StunProtocol.send_data)


@pytest.mark.parametrize("abs_id", [0, 3])  # audio has no abs-send-time, video has
def test_the_header_extension_parses_as_aiortc_parses_it(abs_id: int) -> None:
    forwarder: Any = RtpForwarder.__new__(RtpForwarder)
    forwarder._mid_element, forwarder._abs_id = bytes([(1 << 4) | 0]) + b"0", abs_id
    forwarder._prepare_extension()
    extension = forwarder._extension(1234.5)
    assert len(extension) % 4 == 0
    header = bytes([0x90, 0x80 | 111]) + (7).to_bytes(2, "big") + (960).to_bytes(4, "big")
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
        RTCRtpHeaderExtensionParameters(
            id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time")]))
    packet = RtpPacket.parse(header + (5).to_bytes(4, "big") + extension + b"opus",
                             extensions)
    assert packet.payload == b"opus" and packet.extensions.mid == "0"
    assert packet.extensions.abs_send_time == (
        int(1234.5 * (1 << 18)) & 0xFFFFFF if abs_id else None)


def test_frames_are_cut_as_aiortc_cuts_them() -> None:
    frame = bytes(range(256)) * 20  # 5,120 bytes: four packets
    chunks = vp8_chunks(frame)
    ours = [b"\x90\x80\x80\x07" + chunks[0]] + [b"\x80\x80\x80\x07" + c for c in chunks[1:]]
    assert ours == Vp8Encoder._packetize(frame, 7)


async def _pair() -> tuple[RTCPeerConnection, RTCPeerConnection, RtpForwarder, Any]:
    """A site (offers to receive video) and the bridge side, answering with a forwarder."""
    restrict_host_addresses(["127.0.0.1"])
    config = RTCConfiguration(iceServers=[])
    site, bridge = RTCPeerConnection(config), RTCPeerConnection(config)
    site.addTransceiver("video", direction="recvonly")
    tracks: asyncio.Queue[Any] = asyncio.Queue()
    site.on("track", tracks.put_nowait)
    await site.setLocalDescription(await site.createOffer())
    await bridge.setRemoteDescription(site.localDescription)
    transceiver = bridge.getTransceivers()[0]
    transceiver.direction = "sendonly"
    forwarder = RtpForwarder(transceiver.sender)
    await bridge.setLocalDescription(await bridge.createAnswer())
    await site.setRemoteDescription(bridge.localDescription)
    return site, bridge, forwarder, await asyncio.wait_for(tracks.get(), 10)


async def _encoded_frames(count: int) -> tuple[list[bytes], tuple[int, int]]:
    encoder, card = Vp8Encoder(), ColourCardTrack((30, 160, 60))
    frames, size = [], (0, 0)
    for index in range(count):
        picture = await card.recv()
        size = (picture.width, picture.height)
        payloads, _ts = encoder.encode(picture, force_keyframe=index == 0)
        frames.append(b"".join(VpxPayloadDescriptor.parse(p)[1] for p in payloads))
    return frames, size


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
async def test_a_site_decodes_forwarded_frames_and_gets_a_nacked_packet_again(
        native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not native:  # the path of a TURN relay, TCP, IPv6 or an unbuilt module
        monkeypatch.setattr(rtp_forwarder, "rtp_send_native", None)
    site, bridge, forwarder, track = await _pair()
    receiver: RTCRtpReceiver = site.getTransceivers()[0].receiver
    seen: list[RtpPacket] = []
    handle = receiver._handle_rtp_packet

    async def record(packet: RtpPacket, arrival_time_ms: int) -> None:
        seen.append(packet)
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = record  # type: ignore[method-assign]
    output = VideoOutput(forwarder)
    try:
        frames, size = await _encoded_frames(10)
        for _ in range(200):  # until DTLS is up and aiortc's sender has started
            if output.send_frame(EncodedFrame(frames[0]), 0):
                break
            await asyncio.sleep(0.02)
        for index, data in enumerate(frames[1:], start=1):
            assert output.send_frame(EncodedFrame(data), index * 6000)
            await asyncio.sleep(0.01)
        decoded = await asyncio.wait_for(track.recv(), 10)
        assert (decoded.width, decoded.height) == size

        sender = bridge.getTransceivers()[0].sender
        media = [p for p in seen if p.ssrc == sender._ssrc]
        assert len(media) == forwarder.sent >= len(frames)
        assert all((b.sequence_number - a.sequence_number) % 65536 == 1
                   for a, b in itertools.pairwise(media))
        assert all(p.extensions.mid == "0" for p in media)
        ends = [p for p in media if p.marker]
        pictures = [VpxPayloadDescriptor.parse(p.payload)[0].picture_id for p in ends]
        assert all((b - a) % 32768 == 1 for a, b in itertools.pairwise(pictures))
        # What the RTCP sender reports will carry.
        assert sender._RTCRtpSender__packet_count == forwarder.sent  # type: ignore[attr-defined]

        # The site reports a packet lost: the bridge sends it again, as RTX.
        lost = media[-2]
        await receiver._send_rtcp_nack(lost.ssrc, [lost.sequence_number])
        for _ in range(100):
            if forwarder.retransmitted:
                break
            await asyncio.sleep(0.02)
        assert forwarder.retransmitted == 1
        await asyncio.sleep(0.1)
        again = [p for p in seen if p.ssrc == sender._rtx_ssrc]
        assert len(again) == 1
        assert again[0].payload[2:] == lost.payload  # RTX: original sequence number first
        assert int.from_bytes(again[0].payload[:2], "big") == lost.sequence_number

        # A frame of several packets leaves as separate datagrams (natively in one call
        # and one GSO system call).
        big = bytes([0x01]) + bytes(range(256)) * 20  # not a key frame; 4 packets
        before = len(seen)
        assert output.send_frame(EncodedFrame(big), len(frames) * 6000)
        for _ in range(100):
            if len(seen) - before >= 4:
                break
            await asyncio.sleep(0.02)
        if native and (rtp_forwarder.rtp_send_native is not None or REQUIRE_ALL):
            assert forwarder.native_sends >= 1
        elif not native:
            assert forwarder.native_sends == 0
        arrived = [p for p in seen[before:] if p.ssrc == sender._ssrc]
        assert [p.marker for p in arrived] == [0, 0, 0, 1]
        assert b"".join(VpxPayloadDescriptor.parse(p.payload)[1] for p in arrived) == big
    finally:
        await site.close()
        await bridge.close()
    assert not output.send_frame(EncodedFrame(b"\x00"), 0)  # closed: dropped, no error
