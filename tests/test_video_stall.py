"""A received video stuck after a loss starts again from a fresh keyframe.

aiortc's receiver waits for lost packets that nobody retransmits until its
512-packet jitter buffer overflows (about 34 s of 15 fps test video here);
`read_video` notices that packets arrive but no frame comes out and restarts
the receiver with a keyframe request."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError

from bridge.agent.generated_media import ColourCardTrack
from bridge.agent.video_stall import StallGuard, read_video
from bridge.ice_policy import restrict_host_addresses


def test_guard_restarts_only_when_packets_arrive_without_frames() -> None:
    guard = StallGuard(started=0.0)
    guard.frame(packets=100, now=10.0)
    assert not guard.stalled(packets=140, now=10.5)  # not long enough without a frame
    assert not guard.stalled(packets=102, now=12.0)  # nothing arrives: source or network down
    assert guard.stalled(packets=140, now=12.0)
    assert not guard.stalled(packets=160, now=13.0)  # one restart per 2 s
    assert guard.stalled(packets=190, now=14.5)
    guard.frame(packets=200, now=14.6)
    assert not guard.stalled(packets=260, now=15.0)


async def _connected_pair() -> tuple[RTCPeerConnection, RTCPeerConnection, Any]:
    restrict_host_addresses(["127.0.0.1"])
    config = RTCConfiguration(iceServers=[])
    sender, receiver = RTCPeerConnection(config), RTCPeerConnection(config)
    sender.addTrack(ColourCardTrack((200, 30, 30)))
    tracks: asyncio.Queue[Any] = asyncio.Queue()
    receiver.on("track", tracks.put_nowait)
    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(receiver.localDescription)
    return sender, receiver, await asyncio.wait_for(tracks.get(), 10)


async def test_video_resumes_after_a_loss_the_jitter_buffer_would_wait_out() -> None:
    sender_pc, receiver_pc, track = await _connected_pair()
    rtp_receiver: RTCRtpReceiver = receiver_pc.getTransceivers()[0].receiver
    handle = rtp_receiver._handle_rtp_packet
    lost = {"left": 0}
    loss_over = asyncio.Event()

    async def lossy(packet: Any, arrival_time_ms: int) -> None:
        if lost["left"] > 0:  # the network drops it (retransmissions too)
            lost["left"] -= 1
            if not lost["left"]:
                loss_over.set()
            return
        await handle(packet, arrival_time_ms)

    rtp_receiver._handle_rtp_packet = lossy  # type: ignore[method-assign]
    frames, restarts = [0], [0]
    reader = asyncio.create_task(read_video(
        track, rtp_receiver, lambda: frames.__setitem__(0, frames[0] + 1),
        lambda: restarts.__setitem__(0, restarts[0] + 1)))
    loop = asyncio.get_running_loop()
    try:
        deadline = loop.time() + 15
        while frames[0] < 10:
            assert loop.time() < deadline, "no video at all"
            await asyncio.sleep(0.1)
        lost["left"] = 40  # about 2.7 s of this video: far fewer than 512 packets
        await asyncio.wait_for(loss_over.wait(), 15)
        # The sender keeps its last 128 packets for retransmission: ~3 s at a district's
        # 500 kbit/s. After a longer outage nothing can be repaired; here, forget them.
        sender_pc.getSenders()[0]._RTCRtpSender__rtp_history.clear()  # type: ignore[attr-defined]
        before = frames[0]
        # Without the restart the picture stays frozen for ~30 s; generous, not a timing
        # target (bench/rejoin.py measures how soon).
        deadline = loop.time() + 10
        while frames[0] <= before + 5:
            assert loop.time() < deadline, f"video still frozen ({restarts[0]} restarts)"
            await asyncio.sleep(0.1)
        assert restarts[0] >= 1
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
            await reader
        await sender_pc.close()
        await receiver_pc.close()
