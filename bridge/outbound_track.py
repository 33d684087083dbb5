"""A media track the bridge feeds with pre-encoded packets.

aiortc's `RTCRtpSender` sends whatever `recv()` returns; an `av.Packet`
(rather than a frame) goes through the codec's `pack()` path: no encoding.
The queue is small and drops the oldest packet when full: a receiver that
cannot keep up gets fresh media, not a growing backlog."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Any

from aiortc import MediaStreamTrack
from av.packet import Packet


class OutboundTrack(MediaStreamTrack):
    """Packets pushed by the bridge, sent to one site."""

    def __init__(self, kind: str, max_queue: int) -> None:
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue[Packet[Any]] = asyncio.Queue(maxsize=max_queue)
        self.dropped = 0
        self.sent = 0

    def push(self, data: bytes, pts: int, time_base: Fraction) -> bool:
        """Queue one encoded frame; returns False when an older one had to be dropped."""
        packet = Packet(data)
        packet.pts = pts
        packet.time_base = time_base
        fresh = True
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            fresh = False
        self._queue.put_nowait(packet)
        return fresh

    async def recv(self) -> Packet[Any]:
        packet = await self._queue.get()
        self.sent += 1
        return packet
