"""Video for a room system that only speaks H.264: transcoded at the bridge, for that
room only.

The conference's video is VP8 and forwarded without decoding (`bridge/video_router.py`:
frames cut once, picture IDs rewritten, keyframes found in the VP8 header). A room that
answers H.264 gets its video transcoded instead, so nothing changes for anyone else:

- its camera (`H264Source`): each H.264 frame is decoded and encoded once in VP8; the
  result is an ordinary source, forwarded to every site and the chair's grid as any
  camera is. A keyframe request from a viewer makes the next VP8 frame a keyframe (and
  asks the room for an IDR too, so a decoder that lost packets recovers);
- what it watches (`H264Output`): the VP8 frames of its slot's source are decoded and
  encoded in H.264 (constrained baseline, aiortc's packetiser: FU-A / STAP-A, packetization
  mode 1), sent on its video stream; its PLI forces an IDR.

Decoding and encoding run in one worker thread per direction (FFmpeg releases the GIL),
in order, so the event loop only hands frames over and sends the packets. At most
`MAX_PENDING` frames wait per direction; a frame beyond that is dropped and the next
one is encoded as a keyframe, so a busy machine shows a lower frame rate, never a
corrupt picture. Why transcoding rather than H.264 for the whole conference, and what
it costs: docs/sip.md."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any, TypeVar

import av
from aiortc.codecs.h264 import H264Decoder, H264Encoder
from aiortc.codecs.vpx import Vp8Decoder
from aiortc.jitterbuffer import JitterFrame

from bridge.rtp_forwarder import EncodedFrame, RtpForwarder
from bridge.video_router import VideoSource

log = logging.getLogger(__name__)

MAX_PENDING = 2  # frames waiting for the worker, per direction
VP8_BITRATE = 600_000
VIDEO_TIME_BASE = Fraction(1, 90000)

T = TypeVar("T")


class _Worker:
    """One thread that runs a direction's codec work in order; results come back on the
    event loop, in the same order."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._loop = asyncio.get_running_loop()
        self.pending = 0
        self.failed = 0
        self.closed = False

    def submit(self, work: Callable[[], T], done: Callable[[T], None]) -> bool:
        """Queue `work`; False (nothing queued) when `MAX_PENDING` frames already wait."""
        if self.closed or self.pending >= MAX_PENDING:
            return False
        self.pending += 1
        future = self._loop.run_in_executor(self._executor, work)

        def finished(f: asyncio.Future[T]) -> None:
            self.pending -= 1
            if self.closed or f.cancelled():
                return
            if f.exception() is not None:
                self.failed += 1  # a frame the codec refused: the picture recovers at a key
                return
            done(f.result())

        future.add_done_callback(finished)
        return True

    def close(self) -> None:
        self.closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)


class Vp8FrameEncoder:
    """Encodes decoded pictures to VP8 frames (whole frames, not packets)."""

    def __init__(self, bitrate: int = VP8_BITRATE) -> None:
        self.bitrate = bitrate
        self._ctx: Any = None

    def encode(self, frame: av.VideoFrame, keyframe: bool) -> bytes:
        """One VP8 frame for one picture (`keyframe`: a complete image)."""
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        ctx = self._ctx
        if ctx is None or (ctx.width, ctx.height) != (frame.width, frame.height):
            ctx = av.CodecContext.create("libvpx", "w")
            ctx.width, ctx.height = frame.width, frame.height
            ctx.pix_fmt = "yuv420p"
            ctx.bit_rate = self.bitrate
            ctx.time_base = VIDEO_TIME_BASE
            ctx.gop_size = 3000  # keyframes when asked for, not on a timer
            # As aiortc's own VP8 encoder: real time, no look-ahead, CBR.
            ctx.options = {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0",
                           "minrate": str(self.bitrate), "maxrate": str(self.bitrate),
                           "bufsize": str(self.bitrate), "static-thresh": "1",
                           "partitions": "0"}
            self._ctx = ctx
            keyframe = True
        frame.pict_type = (av.video.frame.PictureType.I if keyframe
                           else av.video.frame.PictureType.NONE)
        frame.pts = None
        return b"".join(bytes(p) for p in ctx.encode(frame))


class H264Source(VideoSource):
    """An H.264 room's camera, as a VP8 source (decoded and encoded once)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self._decoder = H264Decoder()
        self._encoder = Vp8FrameEncoder()
        self._worker = _Worker(f"h264-in-{code}")
        self._force_key = True
        self.transcoded = 0

    def on_h264(self, data: bytes, timestamp: int) -> None:
        """A re-assembled H.264 frame (Annex B) from the room (the receiver's tap)."""
        force, self._force_key = self._force_key, False
        if not self._worker.submit(lambda: self._transcode(data, timestamp, force),
                                   self._deliver):
            self._force_key = True  # dropped: the next one starts a new picture

    def _transcode(self, data: bytes, timestamp: int, force: bool) -> list[tuple[bytes, int]]:
        out = []
        for picture in self._decoder.decode(JitterFrame(data=data, timestamp=timestamp)):
            assert isinstance(picture, av.VideoFrame)
            vp8 = self._encoder.encode(picture, force)
            force = False
            if vp8:
                out.append((vp8, timestamp))
        return out

    def _deliver(self, frames: list[tuple[bytes, int]]) -> None:
        for data, timestamp in frames:
            self.transcoded += 1
            self.on_frame(data, timestamp)

    def request_keyframe(self) -> None:
        """A viewer needs a keyframe: the next VP8 frame is one; the room is asked for an
        IDR as well (rate-limited), in case our decoder lost its reference."""
        self._force_key = True
        super().request_keyframe()

    def close(self) -> None:
        """Stop the worker (the leg closed)."""
        self._worker.close()


class H264Output:
    """A slot's stream to an H.264 room: the VP8 frames it shows, in H.264."""

    def __init__(self, forwarder: RtpForwarder) -> None:
        self.forwarder = forwarder
        self._decoder = Vp8Decoder()
        self._encoder = H264Encoder()
        self._worker = _Worker("h264-out")
        self._force_key = True
        self.sent_frames = 0

    def keyframe_wanted(self) -> None:
        """The room asked for a keyframe (PLI): the next H.264 frame is an IDR."""
        self._force_key = True

    def send_frame(self, frame: EncodedFrame, timestamp: int) -> bool:
        """Transcode and send one VP8 frame at `timestamp` (90 kHz); False when dropped
        (not connected, or the worker is behind: the slot then waits for a keyframe)."""
        if not self.forwarder.connected:
            return False
        force, self._force_key = self._force_key, False
        data = frame.data
        queued = self._worker.submit(lambda: self._transcode(data, timestamp, force),
                                     lambda payloads: self._send(payloads, timestamp))
        if not queued:
            self._force_key = True
        return queued

    def _transcode(self, data: bytes, timestamp: int, force: bool) -> list[bytes]:
        payloads: list[bytes] = []
        for picture in self._decoder.decode(JitterFrame(data=data, timestamp=timestamp)):
            assert isinstance(picture, av.VideoFrame)
            picture.pts, picture.time_base = timestamp, VIDEO_TIME_BASE
            packets, _timestamp = self._encoder.encode(picture, force)
            force = False
            payloads.extend(packets)
        return payloads

    def _send(self, payloads: list[bytes], timestamp: int) -> None:
        if payloads and self.forwarder.send_chunks(timestamp, payloads):
            self.sent_frames += 1

    def close(self) -> None:
        """Stop the worker."""
        with contextlib.suppress(Exception):
            self._worker.close()
