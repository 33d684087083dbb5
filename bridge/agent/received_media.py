"""What the agent receives: every frame is read and counted, then discarded.

aiortc's receive queues are unbounded, so a track nobody reads would grow
forever, and a headless agent has no loudspeaker or screen to play it on.

Each received video slot also keeps its own decoded-frame count with its
receiver (`VideoSlot`), for the heartbeat's frames per second by slot
(`call_stats.py`): audio frames never count there."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass

from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError

from bridge.agent.site_client import Received
from bridge.agent.video_stall import read_video

log = logging.getLogger(__name__)


@dataclass(eq=False)
class VideoSlot:
    """One received video slot of one connection: its receiver and the frames decoded so
    far. A rejoin makes new ones (new receivers, counts from zero)."""

    slot: str
    receiver: RTCRtpReceiver
    frames: int = 0


class ReceivedMedia:
    """Reads the received tracks of every conference; counts frames per slot."""

    def __init__(self) -> None:
        self.frames: Counter[str] = Counter()  # per slot ("mix", "chair", ...), all kinds
        self.video_restarts = 0
        # The video slots being read, per conference (the newest connection's).
        self.video: dict[int, dict[str, VideoSlot]] = {}
        self._readers: set[asyncio.Task[None]] = set()

    def consume(self, conference_id: int, item: Received) -> None:
        """Start reading a track the bridge just began to send (a site client's
        `on_received`)."""
        task = asyncio.get_running_loop().create_task(self.drain(conference_id, item))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    def video_slots(self, conference_id: int) -> list[VideoSlot]:
        """The video slots of `conference_id` being read now."""
        return list(self.video.get(conference_id, {}).values())

    async def drain(self, conference_id: int, item: Received) -> None:
        """Read every frame of a received track (its queue is unbounded), count, discard.

        A video that stops decoding while its packets still arrive (after a network
        outage) is restarted from a fresh keyframe (`bridge/agent/video_stall.py`)."""
        log.debug("conference %s: receiving %s (%s)", conference_id, item.slot, item.track.kind)
        video: VideoSlot | None = None
        if item.track.kind == "video" and item.receiver is not None:
            video = VideoSlot(item.slot, item.receiver)
            self.video.setdefault(conference_id, {})[item.slot] = video

        def frame() -> None:
            self.frames[item.slot] += 1
            if video is not None:
                video.frames += 1

        def restart() -> None:
            log.info("conference %s: the %s video is stuck after a loss; asking for a fresh "
                     "keyframe", conference_id, item.slot)
            self.video_restarts += 1

        try:
            with contextlib.suppress(MediaStreamError):
                if video is not None:
                    await read_video(item.track, video.receiver, frame, restart)
                else:
                    while True:
                        await item.track.recv()
                        frame()
        finally:
            slots = self.video.get(conference_id, {})
            if video is not None and slots.get(item.slot) is video:
                del slots[item.slot]
                if not slots:
                    del self.video[conference_id]

    async def stop(self) -> None:
        """Stop reading (the agent is stopping)."""
        readers = list(self._readers)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
