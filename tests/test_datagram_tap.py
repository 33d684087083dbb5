"""Media received by callback (`bridge/datagram_tap.py`), between two real aiortc peers.

The first test fails loudly when an aiortc/aioice upgrade moves a name the
callback path relies on; read bridge/datagram_tap.py before letting it in."""

from __future__ import annotations

import asyncio
import inspect

from aioice.ice import Connection, StunProtocol
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import RtpPacket

from bridge import datagram_tap
from bridge.agent.generated_media import ToneTrack
from bridge.ice_policy import restrict_host_addresses
from bridge.media_tap import tap_audio
from bridge.rtp_forwarder import RtpForwarder


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


async def test_audio_reaches_the_tap_by_callback_and_the_queue_stays_empty() -> None:
    restrict_host_addresses(["127.0.0.1"])
    config = RTCConfiguration(iceServers=[])
    site, bridge = RTCPeerConnection(config), RTCPeerConnection(config)
    site.addTrack(ToneTrack(440))
    await site.setLocalDescription(await site.createOffer())
    await bridge.setRemoteDescription(site.localDescription)
    transceiver = bridge.getTransceivers()[0]
    received: list[RtpPacket] = []
    tap_audio(transceiver.receiver, received.append)
    RtpForwarder(transceiver.sender)  # installs the callback path once DTLS is up
    transceiver.direction = "sendrecv"
    await bridge.setLocalDescription(await bridge.createAnswer())
    await site.setRemoteDescription(bridge.localDescription)
    try:
        connection = transceiver.receiver.transport.transport._connection
        for _ in range(250):
            pair = connection._nominated.get(1)
            if pair is not None and datagram_tap.HANDLER in pair.protocol.__dict__:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the callback path was never installed")
        dtls = transceiver.receiver.transport
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
