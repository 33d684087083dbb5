"""The bridge's RTCP on its direct send path (`bridge/rtcp_sender.py`), between two real
aiortc peers.

The first test fails loudly when an aiortc/aioice upgrade moves one of the
private names the direct path uses; read bridge/rtcp_sender.py and adapt it
before letting the upgrade in. The second has a site (plain aiortc, as the
endpoint agent) send and receive video with the bridge side on loopback: the
site must still get what the bridge's RTCP asks for (its receiver learns the
sender reports, a PLI brings a keyframe, a NACK a retransmission, a REMB
arrives), while aiortc's ICE send chain is never entered."""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version
from typing import Any

import aioice.ice
import pytest
from aiortc import (
    RTCConfiguration,
    RTCIceTransport,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
)
from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from bridge import rtcp_sender
from bridge.agent.generated_media import ColourCardTrack
from bridge.ice_policy import restrict_host_addresses
from bridge.media_tap import (
    PACKET_TAP,
    PINNED_AIORTC,
    is_vp8_keyframe,
    request_keyframe,
    tap_video,
)
from bridge.rtp_forwarder import EncodedFrame, RtpForwarder, VideoOutput


def _lines(function: Any) -> list[str]:
    return [line.strip() for line in inspect.getsource(function).splitlines() if line.strip()]


def test_the_names_the_direct_rtcp_path_uses_are_where_it_expects_them() -> None:
    assert version("aiortc") == PINNED_AIORTC
    assert version("aioice") == "0.13.0"
    # A plain coroutine method, so an instance attribute of the same name replaces it.
    method = RTCDtlsTransport.__dict__[rtcp_sender.ATTRIBUTE]
    assert inspect.isfunction(method) and inspect.iscoroutinefunction(method)
    # Everything aiortc's method does, which DirectSend does too (but the send itself).
    assert _lines(RTCDtlsTransport._send_rtp) == [
        "async def _send_rtp(self, data: bytes) -> None:",
        "if self._state != State.CONNECTED:",
        'raise ConnectionError("Cannot send encrypted RTP, not connected")',
        "if is_rtcp(data):",
        "data = self._tx_srtp.protect_rtcp(data)",
        "else:",
        "data = self._tx_srtp.protect(data)",
        "await self.transport._send(data)",
        "self.__tx_bytes += len(data)",
        "self.__tx_packets += 1",
    ]
    stats = inspect.getsource(RTCDtlsTransport._get_stats)
    assert "packetsSent=self.__tx_packets" in stats and "bytesSent=self.__tx_bytes" in stats
    # Every RTCP aiortc sends reaches the transport's `_send_rtp` through the instance.
    assert "await self.transport._send_rtp(payload)" in inspect.getsource(
        RTCRtpSender._send_rtcp)
    assert "await self._send_rtcp(packets)" in inspect.getsource(RTCRtpSender._run_rtcp)
    assert "await self.transport._send_rtp(bytes(packet))" in inspect.getsource(
        RTCRtpReceiver._send_rtcp)
    for method_name in ("_send_rtcp_nack", "_send_rtcp_pli", "_run_rtcp"):
        assert "await self._send_rtcp(packet)" in inspect.getsource(
            getattr(RTCRtpReceiver, method_name)), method_name
    assert "await self._dtls._send_rtp(packet)" in inspect.getsource(RtpForwarder._retransmit)
    # The chain it skips, and the nominated pair it sends on instead.
    init = inspect.getsource(RTCIceTransport.__init__)
    assert "self._connection = gatherer._connection" in init
    assert "self._send = self._connection.send" in init
    assert "await self.sendto(data, 1)" in inspect.getsource(aioice.ice.Connection.send)
    sendto = inspect.getsource(aioice.ice.Connection.sendto)
    assert "active_pair = self._nominated.get(component)" in sendto
    assert "await active_pair.protocol.send_data(data, active_pair.remote_addr)" in sendto
    assert _lines(aioice.ice.StunProtocol.send_data)[1:] == ["self.transport.sendto(data, addr)"]


def transport_stats(dtls: Any) -> Any:
    """The DTLS transport's entry of the connection's statistics."""
    (report,) = dtls._get_stats().values()
    return report


async def _until(condition: Any, what: str, seconds: float = 5) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never: {what}")


async def _frames(count: int) -> list[bytes]:
    encoder, card = Vp8Encoder(), ColourCardTrack((200, 40, 40))
    frames = []
    for index in range(count):
        payloads, _ts = encoder.encode(await card.recv(), force_keyframe=index == 0)
        frames.append(b"".join(VpxPayloadDescriptor.parse(p)[1] for p in payloads))
    return frames


async def test_a_site_gets_the_bridges_rtcp_sent_directly() -> None:
    restrict_host_addresses(["127.0.0.1"])
    config = RTCConfiguration(iceServers=[])
    site, bridge = RTCPeerConnection(config), RTCPeerConnection(config)
    site.addTrack(ColourCardTrack((30, 160, 60)))  # the site's camera, aiortc's own sender
    await site.setLocalDescription(await site.createOffer())
    await bridge.setRemoteDescription(site.localDescription)
    transceiver = bridge.getTransceivers()[0]
    receiver = transceiver.receiver
    # The bridge side as in production: the camera by VideoIngest, the slot by a forwarder.
    frames_in: list[bytes] = []
    packets_in: list[RtpPacket] = []
    ssrcs: list[int] = []
    ingest = tap_video(receiver, lambda data, _ts: frames_in.append(data), ssrcs.append)

    async def record(packet: RtpPacket, arrival_time_ms: int) -> None:
        packets_in.append(packet)
        await ingest.handle(packet, arrival_time_ms)

    def record_now(packet: RtpPacket) -> None:  # once DTLS is up: by callback
        packets_in.append(packet)
        ingest.receive(packet)

    receiver._handle_rtp_packet = record  # type: ignore[method-assign]
    receiver.__dict__[PACKET_TAP] = record_now
    forwarder = RtpForwarder(transceiver.sender)
    output = VideoOutput(forwarder)
    transceiver.direction = "sendrecv"
    await bridge.setLocalDescription(await bridge.createAnswer())
    await site.setRemoteDescription(bridge.localDescription)

    site_transceiver = site.getTransceivers()[0]
    site_sender, site_receiver = site_transceiver.sender, site_transceiver.receiver
    rtcp_at_site: list[Any] = []
    keyframe_requests: list[float] = []
    for recipient in (site_sender, site_receiver):
        handle = recipient._handle_rtcp_packet

        async def seen(packet: Any, handle: Any = handle) -> None:
            rtcp_at_site.append(packet)
            await handle(packet)

        recipient._handle_rtcp_packet = seen  # type: ignore[method-assign]
    force_keyframe = site_sender._send_keyframe

    def keyframe_wanted() -> None:
        keyframe_requests.append(asyncio.get_running_loop().time())
        force_keyframe()

    site_sender._send_keyframe = keyframe_wanted  # type: ignore[method-assign]

    dtls: Any = transceiver.sender.transport
    assert rtcp_sender.installed(dtls) is None  # before DTLS is up: aiortc's path
    frames = await _frames(8)
    sending = True

    async def send_frames() -> None:
        index = 0
        while sending:
            output.send_frame(EncodedFrame(frames[index % len(frames)]), index * 3000)
            index += 1
            await asyncio.sleep(0.033)

    sender_task = asyncio.create_task(send_frames())
    try:
        await _until(lambda: forwarder.connected and ssrcs, "connected, the camera seen", 10)
        direct = rtcp_sender.installed(dtls)
        assert direct is not None
        assert rtcp_sender.installed(site_transceiver.sender.transport) is None  # the site's
        # From now on aiortc's ICE send chain must stay unused: count what enters it.
        chain: list[bytes] = []
        ice_send = dtls.transport._send

        async def counted(data: bytes) -> None:
            chain.append(data)
            await ice_send(data)

        dtls.transport._send = counted
        site_ssrc = ssrcs[0]

        # Sender reports: the site's receiver learns what the bridge has sent.
        def remote_outbound() -> list[Any]:
            stats = site_receiver._RTCRtpReceiver__stats  # type: ignore[attr-defined]
            return [s for s in stats.values() if s.type == "remote-outbound-rtp"
                    and s.ssrc == transceiver.sender._ssrc and s.packetsSent]

        await _until(lambda: remote_outbound() and any(
            isinstance(p, RtcpSrPacket) and p.ssrc == transceiver.sender._ssrc
            for p in rtcp_at_site), "a sender report at the site", 5)
        assert 0 < remote_outbound()[0].packetsSent <= forwarder.sent

        # PLI: the site is asked for a keyframe, and one reaches the bridge.
        before_frames, before_direct = len(frames_in), direct.direct
        sent_before = transport_stats(dtls)
        await request_keyframe(receiver, site_ssrc)
        # Sent in the call itself, and in aiortc's transport statistics (getStats()).
        assert direct.direct == before_direct + 1
        sent_after = transport_stats(dtls)
        assert sent_after.packetsSent == sent_before.packetsSent + 1
        assert sent_after.bytesSent > sent_before.bytesSent
        await _until(lambda: keyframe_requests, "the PLI at the site")
        assert any(isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_PLI
                   and p.media_ssrc == site_ssrc for p in rtcp_at_site)
        await _until(lambda: any(is_vp8_keyframe(f) for f in frames_in[before_frames:]),
                     "a keyframe from the site")

        # NACK: the site sends the packet again (as RTX).
        lost = [p for p in packets_in if p.ssrc == site_ssrc][-3]
        await receiver._send_rtcp_nack(site_ssrc, [lost.sequence_number])
        rtx_ssrc = site_sender._rtx_ssrc

        def again() -> list[RtpPacket]:
            return [p for p in packets_in if p.ssrc == rtx_ssrc
                    and int.from_bytes(p.payload[:2], "big") == lost.sequence_number]

        await _until(again, "the NACKed packet again")
        assert again()[0].payload[2:] == lost.payload

        # REMB: the site's sender gets the bridge's estimate.
        rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
        await receiver._send_rtcp(RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0,
            fci=pack_remb_fci(321_000, [site_ssrc])))

        def rembs() -> list[tuple[int, list[int]]]:
            return [unpack_remb_fci(p.fci) for p in rtcp_at_site
                    if isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_APP]

        await _until(lambda: (321_000, [site_ssrc]) in rembs(), "the REMB at the site")

        # The bridge's receiver reports reach the site's sender (round trip, jitter).
        def remote_inbound() -> list[Any]:
            stats = site_sender._RTCRtpSender__stats  # type: ignore[attr-defined]
            return [s for s in stats.values() if s.type == "remote-inbound-rtp"]

        await _until(remote_inbound, "a receiver report at the site", 5)

        assert direct.fallback == 0
        assert chain == []  # all of it left on the direct path
    finally:
        sending = False
        await sender_task
        await site.close()
        await bridge.close()
    # Closed: aiortc's error, which its callers expect (and swallow).
    with pytest.raises(ConnectionError):
        await dtls._send_rtp(b"\x81\xc9\x00\x01" + bytes(4))
    await receiver._send_rtcp_pli(1234)
