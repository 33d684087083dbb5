"""Recording a conference: the common audio mix and the main video, into one WebM file.

Nothing is decoded or encoded: the recorder muxes the Opus packets the audio
engine already makes for the common mix (everyone audible) and the VP8 frames of
whatever the main video shows, with PyAV's (FFmpeg's) WebM muxer.

- Audio: every tick the engine hands `audio()` the common packet and its pts on
  the engine's 48 kHz line. The recording keeps the steps of that line, placed
  on the wall clock since the recording's start, and placed again when they
  stray more than `AUDIO_MAX_DRIFT` from it (an overloaded engine skips late
  ticks: the audio then has a gap, and stays in step with the video). The
  packets are mono (the mixer encodes mono), so the track says 1 channel.
  Matroska's codec mapping for `A_OPUS` makes the Opus identification header
  (RFC 7845, 5.1: "OpusHead") the mandatory CodecPrivate, and FFmpeg's muxer
  writes none by itself (FFmpeg then guesses stereo on reading). PyAV's
  `add_mux_stream` cannot set extradata, and opening a libopus encoder would
  overwrite it (with a 312-sample pre-skip, meant for an encoder's first
  packets, not for a stream joined midway), so the stream is made from a
  never-opened libopus template whose extradata is set by hand: pre-skip 0, no
  CodecDelay.
- Video: a `VideoSlot` like any site's, so it switches sources at a keyframe
  (asked for at once) and waits for a new one after a dropped frame. Its track
  is `_SlotSink`, which puts the frames on the recording's time line: at each
  switch of source (or when a source's clock strays `VIDEO_MAX_DRIFT`) the
  frame is anchored to the wall clock since the start; within a source the
  site's RTP timestamp steps are kept, so motion stays smooth and in step with
  the audio. Width and height of the track come from the first keyframe's
  header (RFC 6386, 9.1); a later source of another size needs nothing more,
  since every VP8 keyframe carries its size and decoders follow it.
- Writing: the event loop only queues (bounded; when full a packet is dropped
  and counted, and the slot then waits for the next keyframe); a thread muxes
  and writes. The header waits for the first video keyframe (audio is held
  meanwhile) or `header_wait` seconds of audio, whichever comes first.
  Measured on this machine, `mux()` of one packet takes ~17 us median (0.5 ms
  at worst, when a cluster is written): cheap, but a slow disk can stall a
  `write()` for much longer, hence the thread (FFmpeg's write releases the GIL).
- Crash safety: clusters are closed at least every second
  (`cluster_time_limit`) and written at once (`flush_packets`). A process that
  dies mid-recording leaves a file FFmpeg reads and decodes up to its last
  complete cluster (tried with a process killed 8 s in: 7 s readable), so at
  most about a second is lost, plus what was queued; it has no duration or cue
  index (`duration` reads as unknown), so it plays but does not seek well. `stop()`
  writes the trailer: duration and cues, so the file is seekable.
"""

from __future__ import annotations

import asyncio
import io
import logging
import queue
import re
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.container import OutputContainer
from av.stream import Stream

from bridge.media_tap import is_vp8_keyframe
from bridge.rtp_forwarder import EncodedFrame
from bridge.video_router import VideoSlot, VideoSource

log = logging.getLogger(__name__)

AUDIO_RATE = 48000
AUDIO_TIME_BASE = Fraction(1, AUDIO_RATE)
VIDEO_CLOCK = 90000
VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK)
# Media whose own timestamps stray this far from the wall clock is anchored to it
# again. Audio: an overloaded engine skips late ticks, so its line falls behind
# (the recording then has a gap, not a lasting shift against the video). Video: a
# site that reconnected starts a new RTP timestamp line; frames arrive with more
# jitter than the engine's ticks, so the bound is wider.
AUDIO_MAX_DRIFT = 0.1  # seconds
VIDEO_MAX_DRIFT = 0.5  # seconds
# Track size when no keyframe came before the header had to be written.
FALLBACK_SIZE = (640, 360)
MUXER_OPTIONS = {"cluster_time_limit": "1000", "flush_packets": "1"}

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_PATTERN = re.compile(r"conference-(?P<conference>[0-9]+)-(?P<started>[0-9]{8}T[0-9]{6}Z)"
                          r"\.webm")


class RecordingError(Exception):
    """A recording could not be started (no directory, no permission, disk full)."""


def recording_name(conference_id: int, started: datetime) -> str:
    """`conference-<id>-<UTC start, to the second>.webm`."""
    return f"conference-{conference_id}-{started.astimezone(UTC).strftime(STAMP_FORMAT)}.webm"


def parse_recording_name(name: str) -> tuple[int, datetime] | None:
    """The conference id and start of a recording's file name; None if not one."""
    match = NAME_PATTERN.fullmatch(name)
    if match is None:
        return None
    try:
        started = datetime.strptime(match["started"], STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:  # e.g. month 13
        return None
    return int(match["conference"]), started


def opus_head(channels: int = 1, pre_skip: int = 0, input_rate: int = AUDIO_RATE) -> bytes:
    """The Opus identification header (RFC 7845, 5.1) for mapping family 0."""
    if channels not in (1, 2):
        raise ValueError("mapping family 0 carries 1 or 2 channels")
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, input_rate, 0, 0)


def vp8_dimensions(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe's header (RFC 6386, 9.1); None otherwise."""
    if len(frame) < 10 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


@dataclass(frozen=True)
class _Packet:
    kind: str  # "audio" or "video"
    data: bytes
    pts: int  # on the recording's line: 1/48000 for audio, 1/90000 for video
    keyframe: bool = True


class _SlotSink:
    """The output of the recorder's `VideoSlot`: frames go to the recorder."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def send_frame(self, frame: EncodedFrame, timestamp: int) -> bool:
        return self._recorder._video(frame.data, timestamp)


class Recorder:
    """Writes one recording; made by `create`, fed by the room, finished by `stop`."""

    def __init__(self, path: Path, started: datetime, *, frame_samples: int = 960,
                 max_queue: int = 500, header_wait: float = 2.0,
                 on_failure: Callable[[], None] | None = None) -> None:
        self.path = path
        self.started = started
        self.frame_samples = frame_samples
        self.header_wait = header_wait
        self.on_failure = on_failure
        self.slot = VideoSlot("recording", _SlotSink(self))
        self.audio_packets = 0
        self.video_frames = 0
        self.dropped = 0
        self.failed = False
        self.size: tuple[int, int] | None = None  # of the video track, once the header is out
        self._queue: queue.Queue[_Packet | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name=f"recorder {path.name}",
                                        daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._audio_base: int | None = None
        self._last_audio = -1
        self._anchor: tuple[VideoSource | None, int, int] | None = None  # source, in, out
        self._last_video = -1
        self._stopped = False

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, directory: Path, conference_id: int, now: datetime | None = None,
               **options: Any) -> Recorder:
        """A recorder with a new, empty file in `directory`; raises RecordingError.

        Names have one-second resolution: when the name is taken (a recording
        restarted within the second) the next free second is used."""
        now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for attempt in range(60):
                started = now + timedelta(seconds=attempt)
                path = directory / recording_name(conference_id, started)
                try:
                    path.touch(exist_ok=False)
                except FileExistsError:
                    continue
                return cls(path, started, **options)
        except OSError as exc:
            raise RecordingError(f"cannot write recordings to {directory}: "
                                 f"{exc.strerror or exc}") from exc
        raise RecordingError(f"no free recording name in {directory}")

    # -- the event loop's side ------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self._thread.start()
        log.info("recording %s started", self.name)

    def show(self, source: VideoSource | None) -> None:
        """Record `source` as the main video from its next keyframe on."""
        if not self._stopped:
            self.slot.show(source)

    def audio(self, data: bytes, pts: int) -> None:
        """The common mix packet of one tick, `pts` on the audio engine's 48 kHz line."""
        if self._stopped:
            return
        now = round(self._elapsed() * AUDIO_RATE)
        if (self._audio_base is None
                or abs(pts - self._audio_base - now) > AUDIO_MAX_DRIFT * AUDIO_RATE):
            self._audio_base = pts - now
        out = max(pts - self._audio_base, self._last_audio + self.frame_samples)
        self._last_audio = out
        self._put(_Packet("audio", data, out))

    def _video(self, data: bytes, pts: int) -> bool:
        """A frame from the slot (`pts` on the slot's own 90 kHz line)."""
        if self._stopped:
            return True
        now = round(self._elapsed() * VIDEO_CLOCK)
        source = self.slot.source
        anchor = self._anchor
        if (anchor is None or anchor[0] is not source
                or abs(anchor[2] + pts - anchor[1] - now) > VIDEO_MAX_DRIFT * VIDEO_CLOCK):
            anchor = self._anchor = (source, pts, now)
        out = anchor[2] + pts - anchor[1]
        out = max(out, self._last_video + VIDEO_CLOCK // 1000)  # WebM counts milliseconds
        self._last_video = out
        return self._put(_Packet("video", data, out, is_vp8_keyframe(data)))

    def _elapsed(self) -> float:
        assert self._loop is not None, "start() first"
        return self._loop.time() - self._t0

    def _put(self, packet: _Packet) -> bool:
        try:
            self._queue.put_nowait(packet)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    async def stop(self) -> None:
        """Stop taking media and finish the file (trailer: duration and cues)."""
        if self._stopped:
            return
        self._stopped = True
        self.slot.close()
        if self._thread.is_alive():
            await asyncio.to_thread(self._finish)
        log.info("recording %s stopped: %d audio packets, %d video frames, %d dropped",
                 self.name, self.audio_packets, self.video_frames, self.dropped)

    def _finish(self) -> None:
        self._queue.put(None)
        self._thread.join()

    # -- the writer thread ------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._write()
        except Exception:
            log.exception("recording %s failed", self.name)
            self.failed = True
            if self.on_failure is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self.on_failure)
            while self._queue.get() is not None:  # drain: stop() must not block
                pass

    def _write(self) -> None:
        container: OutputContainer | None = None
        streams: dict[str, Stream] = {}
        pending: list[_Packet] = []
        try:
            while (packet := self._queue.get()) is not None:
                if container is None:
                    pending.append(packet)
                    if not self._header_due(pending):
                        continue
                    container, streams = self._open(pending)
                    batch, pending = pending, []
                else:
                    batch = [packet]
                for item in batch:
                    self._mux(container, streams, item)
            if container is None:  # stopped before the header was due
                container, streams = self._open(pending)
                for item in pending:
                    self._mux(container, streams, item)
                if not pending:
                    container.start_encoding()  # an empty but valid file
        finally:
            if container is not None:
                container.close()  # writes the trailer

    def _header_due(self, pending: list[_Packet]) -> bool:
        if any(p.kind == "video" for p in pending):
            return True
        return len(pending) * self.frame_samples >= self.header_wait * AUDIO_RATE

    def _open(self, pending: list[_Packet]) -> tuple[OutputContainer, dict[str, Stream]]:
        size = next((s for p in pending if p.kind == "video"
                     and (s := vp8_dimensions(p.data)) is not None), FALLBACK_SIZE)
        self.size = size
        container = av.open(str(self.path), "w", format="webm",
                            container_options=MUXER_OPTIONS)
        # Streams from templates that are never opened: no encoder is made, and the
        # Opus extradata is ours (see the module doc). A template also keeps PyAV
        # from probing the streams for extradata with a bitstream filter.
        with av.open(io.BytesIO(), "w", format="webm") as scratch:
            audio = container.add_stream_from_template(
                scratch.add_stream("libopus", rate=AUDIO_RATE))
            video = container.add_stream_from_template(scratch.add_stream("libvpx"))
        audio.codec_context.layout = "mono"
        audio.codec_context.extradata = opus_head(channels=1)
        audio.time_base = AUDIO_TIME_BASE
        video.codec_context.width, video.codec_context.height = size
        # No frame rate (the template's default is 24): sites send what they can, so
        # the track gets no DefaultDuration and players go by the timestamps.
        video.codec_context.framerate = Fraction(0, 1)
        video.time_base = VIDEO_TIME_BASE
        return container, {"audio": audio, "video": video}

    def _mux(self, container: OutputContainer, streams: dict[str, Stream],
             item: _Packet) -> None:
        packet = av.Packet(item.data)
        packet.stream = streams[item.kind]
        packet.pts = packet.dts = item.pts
        if item.kind == "audio":
            packet.time_base = AUDIO_TIME_BASE
            packet.duration = self.frame_samples
            self.audio_packets += 1
        else:
            packet.time_base = VIDEO_TIME_BASE
            packet.is_keyframe = item.keyframe
            self.video_frames += 1
        container.mux(packet)
