"""The bridge's receive path for a site's camera (`media_tap.VideoIngest`), real aiortc peers.

A site's aiortc sender sends its VP8 camera to the bridge's tapped receiver on
loopback. The bridge must hand over whole frames that a VP8 decoder decodes, and
keep sending the site what aiortc's receive path sent: receiver reports, REMB
(fed once per frame) and a NACK for a lost packet, whose retransmission (RTX)
completes the frame, so no frame is given up."""

from __future__ import annotations

import asyncio
from typing import Any

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender
from aiortc.rtp import RtcpPsfbPacket, RtcpRrPacket, RtcpRtpfbPacket, RtpPacket

from bridge.agent.generated_media import ColourCardTrack
from bridge.ice_policy import restrict_host_addresses
from bridge.media_tap import PACKET_TAP, VideoIngest, tap_video
from bridge.rtp_forwarder import RtpForwarder


async def test_frames_decode_and_the_site_gets_reports_remb_and_nacks() -> None:
    restrict_host_addresses(["127.0.0.1"])
    config = RTCConfiguration(iceServers=[])
    site, bridge = RTCPeerConnection(config), RTCPeerConnection(config)
    site.addTrack(ColourCardTrack((200, 40, 40), width=320, height=180))
    await site.setLocalDescription(await site.createOffer())
    await bridge.setRemoteDescription(site.localDescription)
    transceiver = bridge.getTransceivers()[0]
    frames: list[tuple[bytes, int]] = []
    ssrcs: list[int] = []
    ingest = tap_video(transceiver.receiver, lambda d, t: frames.append((d, t)), ssrcs.append)
    assert isinstance(ingest, VideoIngest)
    RtpForwarder(transceiver.sender)  # as the bridge: media by callback once DTLS is up
    transceiver.direction = "sendrecv"

    # The network loses one packet of the site's: the bridge must ask for it again. The
    # packets come through aiortc's handler until DTLS is up, then by callback.
    handle, receive = ingest.handle, ingest.receive
    dropped: list[int] = []

    def lost(packet: RtpPacket) -> bool:
        if not dropped and ssrcs and packet.ssrc == ssrcs[0] and len(frames) >= 5:
            dropped.append(packet.sequence_number)
            return True
        return False

    async def lossy(packet: RtpPacket, arrival_time_ms: int) -> None:
        if not lost(packet):
            await handle(packet, arrival_time_ms)

    by_callback: list[int] = []

    def lossy_now(packet: RtpPacket) -> None:
        by_callback.append(packet.sequence_number)
        if not lost(packet):
            receive(packet)

    transceiver.receiver._handle_rtp_packet = lossy  # type: ignore[method-assign]
    transceiver.receiver.__dict__[PACKET_TAP] = lossy_now

    sender: RTCRtpSender = site.getTransceivers()[0].sender
    rtcp: list[Any] = []
    original = sender._handle_rtcp_packet

    async def record(packet: Any) -> None:
        rtcp.append(packet)
        await original(packet)

    sender._handle_rtcp_packet = record  # type: ignore[method-assign]
    await bridge.setLocalDescription(await bridge.createAnswer())
    await site.setRemoteDescription(bridge.localDescription)
    try:
        def done() -> bool:
            kinds = {type(p) for p in rtcp}
            return (len(frames) >= 40 and bool(dropped) and RtcpRrPacket in kinds
                    and any(isinstance(p, RtcpPsfbPacket) and p.fmt == 15 for p in rtcp))

        for _ in range(400):
            if done():
                break
            await asyncio.sleep(0.02)
        kinds = sorted({type(p).__name__ for p in rtcp})
        assert done(), f"{len(frames)} frames, dropped {dropped}, RTCP at the site: {kinds}"
        assert len(ssrcs) == 1
        # Once DTLS was up the packets came by callback, the dropped one among them.
        assert dropped[0] in by_callback

        # The lost packet was asked for (generic NACK) and came back as RTX: nothing given up.
        nacks = [p for p in rtcp if isinstance(p, RtcpRtpfbPacket) and p.fmt == 1]
        assert any(dropped[0] in p.lost for p in nacks)
        assembler = ingest.assemblers[ssrcs[0]]
        assert assembler.gaps == 0 and assembler.dropped_frames == 0

        # Whole frames, in order, that a VP8 decoder decodes.
        timestamps = [t for _, t in frames]
        assert timestamps == sorted(timestamps) and len(set(timestamps)) == len(timestamps)
        decoder = av.CodecContext.create("libvpx", "r")
        pictures = [p for data, _ in frames for p in decoder.decode(av.Packet(data))]
        assert len(pictures) == len(frames)
        assert (pictures[-1].width, pictures[-1].height) == (320, 180)
    finally:
        await site.close()
        await bridge.close()
