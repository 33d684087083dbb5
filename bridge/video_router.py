"""Video forwarding without decoding or encoding.

Each site's camera is a `VideoSource`: the encoded VP8 frames its receiver
re-assembles. Each video stream the bridge sends is a `VideoSlot` ("the
floor", "the chair", one tile of the chair's grid) that forwards the frames
of whichever source it currently shows. Switching a slot to another source
waits for that source's next keyframe (requested at once) and rewrites
timestamps so the receiver sees one continuous stream; the slot's output
(`rtp_forwarder.VideoOutput`) keeps sequence numbers and picture IDs
continuous itself. Each frame is cut into packet bodies once per source
frame, however many slots forward it (`EncodedFrame`)."""

from __future__ import annotations

import asyncio
import logging
import time
from fractions import Fraction
from typing import Protocol

from aiortc import RTCRtpReceiver

from bridge.media_tap import is_vp8_keyframe, request_keyframe
from bridge.rtp_forwarder import EncodedFrame

log = logging.getLogger(__name__)

VIDEO_TIME_BASE = Fraction(1, 90000)
# Gap put between the last frame of the old source and the first of the new one.
SWITCH_GAP = 3000  # 1/30 s at 90 kHz
# Keyframe requests to one source are collapsed into one per this many seconds: a burst
# of PLIs (31 sites joining at once, each dropping frames until its DTLS is up) must not
# become a burst of keyframes, but a site that connects just after one keyframe waits for
# the next request. At 1 s, the sites of a 31-site start split into those that caught the
# first keyframe and those that waited a second more (join 0.4 against 1.4 s); libwebrtc's
# encoder itself honours at most one request per 300 ms.
KEYFRAME_REQUEST_INTERVAL = 0.5


class FrameOutput(Protocol):
    """Where a slot's frames go: a site's stream (`VideoOutput`) or the recorder."""

    def send_frame(self, frame: EncodedFrame, timestamp: int) -> bool:
        """Send `frame` at `timestamp` (90 kHz); False when it was dropped."""
        ...


class VideoSource:
    """One site's encoded camera frames, fanned out to the slots that show it."""

    def __init__(self, code: str, keyframe_interval: float = KEYFRAME_REQUEST_INTERVAL) -> None:
        self.code = code
        self.receiver: RTCRtpReceiver | None = None
        self.ssrc: int | None = None
        self.slots: set[VideoSlot] = set()
        self.frames = 0
        self.keyframes = 0
        self.bytes = 0
        self.keyframe_interval = keyframe_interval
        self._last_request = -keyframe_interval
        self._pending_request = False

    def attach(self, receiver: RTCRtpReceiver) -> None:
        """Take frames from a (new) receiver: the site (re)connected."""
        self.receiver, self.ssrc = receiver, None

    def learn_ssrc(self, ssrc: int) -> None:
        self.ssrc = ssrc
        if self._pending_request:
            self.request_keyframe()

    def on_frame(self, data: bytes, timestamp: int) -> None:
        """A re-assembled frame arrived: give it to every slot showing this source."""
        self.frames += 1
        self.bytes += len(data)
        keyframe = is_vp8_keyframe(data)
        if keyframe:
            self.keyframes += 1
        frame = EncodedFrame(data)
        for slot in list(self.slots):
            slot.offer(self, frame, timestamp, keyframe)

    def request_keyframe(self) -> None:
        """Ask the site for a keyframe, at most once per `keyframe_interval`.

        A request inside the interval is not dropped but deferred to its end,
        so a viewer who switched to this source still gets its keyframe soon;
        one asked before the site's SSRC is known goes when it is."""
        if self.receiver is None or self.ssrc is None:
            self._pending_request = True
            return
        wait = self._last_request + self.keyframe_interval - time.monotonic()
        if wait > 0:
            if not self._pending_request:
                self._pending_request = True
                asyncio.get_running_loop().call_later(wait, self._send_pending)
            return
        self._last_request, self._pending_request = time.monotonic(), False
        asyncio.get_running_loop().create_task(request_keyframe(self.receiver, self.ssrc))

    def _send_pending(self) -> None:
        if self._pending_request:
            self._pending_request = False
            self.request_keyframe()


class VideoSlot:
    """One video stream sent to one site, showing one source at a time."""

    def __init__(self, name: str, output: FrameOutput) -> None:
        self.name = name
        self.output = output
        self.source: VideoSource | None = None
        self._waiting_keyframe = True
        self._offset: int | None = None
        self._last_out = 0
        self.switched_at = 0.0
        self.first_frame_after_switch: float | None = None

    def show(self, source: VideoSource | None) -> None:
        """Show `source` from its next keyframe on (None: show nothing)."""
        if source is self.source:
            return
        if self.source is not None:
            self.source.slots.discard(self)
        self.source = source
        self._waiting_keyframe, self._offset = True, None
        self.switched_at, self.first_frame_after_switch = time.monotonic(), None
        if source is not None:
            source.slots.add(self)
            source.request_keyframe()

    def keyframe_wanted(self) -> None:
        """The receiving site lost pictures (PLI): pass the request to the source."""
        if self.source is not None:
            self.source.request_keyframe()

    def offer(self, source: VideoSource, frame: EncodedFrame, timestamp: int,
              keyframe: bool) -> None:
        if source is not self.source:
            return
        if self._waiting_keyframe:
            if not keyframe:
                return
            self._waiting_keyframe = False
            self.first_frame_after_switch = time.monotonic()
        if self._offset is None:
            # Continue our own timeline where the previous source stopped.
            self._offset = self._last_out + SWITCH_GAP - timestamp
        out = timestamp + self._offset
        if out <= self._last_out:  # a source restarting its clock: stay monotonic
            self._offset += self._last_out + SWITCH_GAP - out
            out = self._last_out + SWITCH_GAP
        self._last_out = out
        if not self.output.send_frame(frame, out):
            # A frame was dropped (not connected yet): the decoder needs a new keyframe.
            self._waiting_keyframe = True
            source.request_keyframe()

    def close(self) -> None:
        self.show(None)
