"""The agent's camera and microphone: a generated test source, a device, or a file, and
whether they are there (`camera_present`, `microphone_present`: `device_probe.py`)."""

from __future__ import annotations

import asyncio
import colorsys
import contextlib
import fractions
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from aiortc import MediaStreamTrack
from av import AudioFrame, VideoFrame
from av.frame import Frame
from av.packet import Packet

from bridge.agent.device_probe import (
    SoundWatch,
    camera_openable,
    is_device_path,
    probe_microphone,
)
from bridge.agent.generated_media import VIDEO_CLOCK, ColourCardTrack, ToneTrack

log = logging.getLogger(__name__)

Tracks = tuple[MediaStreamTrack | None, MediaStreamTrack | None]  # (audio, video)

# An idle microphone device is opened for a short capture at most this often.
MICROPHONE_PROBE_SECONDS = 60.0


def site_identity(code: str) -> tuple[float, tuple[int, int, int]]:
    """The test tone (Hz) and colour card of a site, derived from its code, so each
    site is recognisable by ear and by eye at the other end."""
    digest = zlib.crc32(code.encode())
    frequency = 300.0 + (digest % 40) * 15.0  # 300 .. 885 Hz
    hue = ((digest >> 8) % 360) / 360.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.8, 0.85)
    return frequency, (round(r * 255), round(g * 255), round(b * 255))


class Restamped(MediaStreamTrack):
    """A device's or file's track with timestamps that only go forward.

    A file played in a loop starts its timestamps again at every turn: the VP8
    encoder then refuses the frame (the sender's task dies and the picture
    freezes for the rest of the conference) and RTP timestamps would jump back.
    Audio is stamped by its sample count, video by the wall clock (90 kHz).
    `on_audio` sees each audio frame first (the microphone's `SoundWatch`)."""

    def __init__(self, source: MediaStreamTrack,
                 on_audio: Callable[[AudioFrame], None] | None = None) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source
        self._on_audio = on_audio
        self._samples = 0
        self._start: float | None = None
        self._last = -1

    async def recv(self) -> Frame | Packet[Any]:
        """The source's next frame, restamped."""
        frame = await self._source.recv()
        if isinstance(frame, AudioFrame):
            if self._on_audio is not None:
                self._on_audio(frame)
            frame.pts = self._samples
            frame.time_base = fractions.Fraction(1, frame.sample_rate)
            self._samples += frame.samples
        elif isinstance(frame, VideoFrame):
            now = time.monotonic()
            if self._start is None:
                self._start = now
            self._last = max(round((now - self._start) * VIDEO_CLOCK), self._last + 1)
            frame.pts = self._last
            frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame

    def stop(self) -> None:
        """Stop this track and its source."""
        super().stop()
        self._source.stop()

    @property
    def source_ended(self) -> bool:
        """Whether the device or file behind it stopped delivering (unplugged, read error)."""
        return self._source.readyState == "ended"


class MediaSource:
    """The agent's camera and microphone.

    `testsrc`: a generated tone and colour card identifying the site (new
    tracks for each join). A device (under `/dev/`, for example `/dev/video0`,
    or a character device node elsewhere): the camera through v4l2 and the
    microphone through ALSA (`audio_device`).
    Anything else: a media file, played in a loop. Devices and files are
    opened when the first conference is joined, shared between conferences
    through a MediaRelay, and closed when the agent is in none."""

    def __init__(self, spec: str, endpoint: str, *, audio_device: str = "default",
                 video_size: str = "640x360", framerate: int = 15) -> None:
        self.spec = spec
        self.endpoint = endpoint
        self.audio_device = audio_device
        self.video_size = video_size
        self.framerate = framerate
        self._players: list[Any] = []
        self._relay: Any = None
        self._sources: Tracks = (None, None)
        self._users = 0
        # What the devices showed when last opened, and the microphone's frames since.
        self._camera_failed = False
        self._microphone_failed = False
        self.sound = SoundWatch()
        self._microphone_heard: bool | None = None
        self._microphone_probed_at = -float("inf")
        # A probe of the idle microphone and the opening of the devices for a
        # conference take turns (a sound card's input may open only once).
        self._device_lock = threading.Lock()

    @property
    def kind(self) -> str:
        """`testsrc`, `device` or `file`."""
        if self.spec == "testsrc":
            return "testsrc"
        return "device" if is_device_path(self.spec) else "file"

    @property
    def in_use(self) -> bool:
        """Whether the devices or the file are open (the agent is in a conference)."""
        return self._users > 0

    def camera_present(self) -> bool:
        """Whether the camera is there: a generated source always is, a file when it can
        be read; a device when its node can be opened now and, while in use, it opened as
        a camera and still delivers."""
        if self.kind == "testsrc":
            return True
        if self.kind == "file":
            return os.access(self.spec, os.R_OK)
        if not camera_openable(self.spec):
            return False
        if self.in_use:
            _audio, video = self._sources
            return not self._camera_failed and not (
                isinstance(video, Restamped) and video.source_ended)
        return True

    async def microphone_present(self) -> bool:
        """Whether the microphone is there: a generated or file source always is; a device
        when it opens and delivers frames that are not all silence (while in use: the
        frames sent since the last call; idle: a short capture, at most every
        `MICROPHONE_PROBE_SECONDS`, the last answer in between)."""
        if self.kind != "device":
            return True
        if self.in_use:
            audio, _video = self._sources
            frames, sounding = self.sound.take()
            if self._microphone_failed or (isinstance(audio, Restamped)
                                           and audio.source_ended):
                self._microphone_heard = False
            elif frames:  # none yet (just joined): the last answer stands
                self._microphone_heard = sounding > 0
            return bool(self._microphone_heard)
        now = time.monotonic()
        if self._microphone_heard is None or (
                now - self._microphone_probed_at >= MICROPHONE_PROBE_SECONDS):
            self._microphone_probed_at = now
            self._microphone_heard = await asyncio.to_thread(self._probe_microphone)
        return self._microphone_heard

    def _probe_microphone(self) -> bool:
        with self._device_lock:
            if self.in_use:  # a conference opened it meanwhile: its frames will tell
                return bool(self._microphone_heard)
            return probe_microphone(self.audio_device)

    @contextlib.contextmanager
    def borrowed(self, on_error: Callable[[Exception], None]) -> Iterator[Tracks]:
        """Tracks for one use, given back afterwards; (None, None) when the source
        cannot be opened (`on_error` says so: present but unseen beats absent)."""
        tracks: Tracks | None = None
        try:
            tracks = self.acquire()
        except Exception as exc:
            on_error(exc)
        if tracks is None:
            yield None, None
            return
        try:
            yield tracks
        finally:
            self.release(tracks)

    def acquire(self) -> Tracks:
        """Tracks (audio, video) for one site client; give them back with `release`."""
        if self.kind == "testsrc":
            frequency, colour = site_identity(self.endpoint)
            return ToneTrack(frequency), ColourCardTrack(colour)
        if self._users == 0:
            with self._device_lock:
                self._open_players()
        self._users += 1
        audio, video = self._sources
        return (self._relay.subscribe(audio, buffered=False) if audio else None,
                self._relay.subscribe(video, buffered=False) if video else None)

    def release(self, tracks: Tracks) -> None:
        """Stop a site client's tracks; close the devices when nobody uses them."""
        for track in tracks:
            if track is not None:
                track.stop()
        if self.kind == "testsrc":
            return
        self._users = max(self._users - 1, 0)
        if self._users == 0:
            self.close()

    def close(self) -> None:
        """Close the devices or the file (the camera light goes off)."""
        for track in self._sources:
            if track is not None:
                track.stop()
        self._players, self._relay, self._sources = [], None, (None, None)

    def _open_players(self) -> None:
        # Imported here: only device and file sources need PyAV's demuxers.
        from aiortc.contrib.media import MediaPlayer, MediaRelay

        self._relay = MediaRelay()
        if self.kind == "file":
            player = MediaPlayer(self.spec, loop=True)
            self._players = [player]
            self._sources = (Restamped(player.audio) if player.audio else None,
                             Restamped(player.video) if player.video else None)
            return
        # A camera and a microphone are two devices: each opened on its own, and
        # a missing microphone must not keep the picture from being sent.
        video = audio = None
        self._camera_failed = self._microphone_failed = False
        try:
            camera = MediaPlayer(self.spec, format="v4l2", options={
                "video_size": self.video_size, "framerate": str(self.framerate)})
            self._players.append(camera)
            video = camera.video
        except Exception as exc:
            self._camera_failed = True
            log.error("cannot open the camera %s: %s; sending no picture", self.spec, exc)
        try:
            microphone = MediaPlayer(self.audio_device, format="alsa")
            self._players.append(microphone)
            audio = microphone.audio
        except Exception as exc:
            self._microphone_failed = True
            log.error("cannot open the microphone (ALSA %s): %s; sending no sound",
                      self.audio_device, exc)
        self.sound.take()
        self._sources = (Restamped(audio, self.sound.saw) if audio else None,
                         Restamped(video) if video else None)

