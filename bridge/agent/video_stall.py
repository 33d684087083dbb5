"""When a received video is stuck: packets keep arriving, yet no frame comes out.

After a network outage of a few seconds, aiortc's receiver waits for the lost
packets (nobody retransmits them) and decodes nothing until its 512-packet
jitter buffer has overflowed: at a district's bitrate, tens of seconds of
frozen picture after the network is back. Browsers ask for a keyframe when
decoding stalls; the endpoint agent does the same with this rule and
`media_tap.restart_video_receiver` (`read_video` puts them together)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import MediaStreamTrack, RTCRtpReceiver

from bridge.media_tap import packets_received, restart_video_receiver

# No frame for this long while packets arrive: stuck.
STALL_SECONDS = 1.0
# Packets that must have arrived since the last frame (a source that paused is not stuck).
STALL_PACKETS = 5
# At most one restart per this many seconds (the keyframe needs a round trip or two).
RESTART_EVERY_SECONDS = 2.0


@dataclass
class StallGuard:
    """Decides, from a receiver's packet count and its decoded frames, when to restart it."""

    started: float
    after: float = STALL_SECONDS
    min_packets: int = STALL_PACKETS
    every: float = RESTART_EVERY_SECONDS
    _last_frame: float = field(init=False)
    _packets_at_frame: int = field(default=0, init=False)
    _last_restart: float = field(default=-math.inf, init=False)

    def __post_init__(self) -> None:
        self._last_frame = self.started

    def frame(self, packets: int, now: float) -> None:
        """A frame was decoded; `packets` is the receiver's packet count now."""
        self._last_frame, self._packets_at_frame = now, packets

    def stalled(self, packets: int, now: float) -> bool:
        """Whether to restart now (and, if so, count it as done)."""
        if now - self._last_frame < self.after:
            return False
        if packets - self._packets_at_frame < self.min_packets:
            return False  # nothing arrives: the source paused or the network is still down
        if now - self._last_restart < self.every:
            return False
        self._last_restart = now
        return True


async def read_video(track: MediaStreamTrack, receiver: RTCRtpReceiver,
                     on_frame: Callable[[], None], on_restart: Callable[[], None]) -> None:
    """Read `track` (received by `receiver`) frame by frame until it ends (raises
    MediaStreamError), calling `on_frame` for each; restart the receiver when it is stuck.
    `on_restart` is told first (for a log line or a counter)."""
    guard = StallGuard(time.monotonic())
    while True:
        try:
            await asyncio.wait_for(track.recv(), guard.after / 2)
        except TimeoutError:
            if guard.stalled(packets_received(receiver), time.monotonic()):
                on_restart()
                await restart_video_receiver(receiver)
            continue
        on_frame()
        guard.frame(packets_received(receiver), time.monotonic())
