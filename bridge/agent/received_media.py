"""What the agent receives: every frame is read and counted, then discarded.

aiortc's receive queues are unbounded, so a track nobody reads would grow
forever, and a headless agent has no loudspeaker or screen to play it on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

from aiortc.mediastreams import MediaStreamError

from bridge.agent.site_client import Received
from bridge.agent.video_stall import read_video

log = logging.getLogger(__name__)


class ReceivedMedia:
    """Reads the received tracks of every conference; counts frames per slot."""

    def __init__(self) -> None:
        self.frames: Counter[str] = Counter()  # per slot ("mix", "chair", ...)
        self.video_restarts = 0
        self._readers: set[asyncio.Task[None]] = set()

    def consume(self, conference_id: int, item: Received) -> None:
        """Start reading a track the bridge just began to send (a site client's
        `on_received`)."""
        task = asyncio.get_running_loop().create_task(self.drain(conference_id, item))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    async def drain(self, conference_id: int, item: Received) -> None:
        """Read every frame of a received track (its queue is unbounded), count, discard.

        A video that stops decoding while its packets still arrive (after a network
        outage) is restarted from a fresh keyframe (`bridge/agent/video_stall.py`)."""
        log.debug("conference %s: receiving %s (%s)", conference_id, item.slot, item.track.kind)

        def frame() -> None:
            self.frames[item.slot] += 1

        def restart() -> None:
            log.info("conference %s: the %s video is stuck after a loss; asking for a fresh "
                     "keyframe", conference_id, item.slot)
            self.video_restarts += 1

        with contextlib.suppress(MediaStreamError):
            if item.track.kind == "video" and item.receiver is not None:
                await read_video(item.track, item.receiver, frame, restart)
            else:
                while True:
                    await item.track.recv()
                    frame()

    async def stop(self) -> None:
        """Stop reading (the agent is stopping)."""
        readers = list(self._readers)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
