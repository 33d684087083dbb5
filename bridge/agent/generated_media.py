"""Generated camera and microphone for unattended agents without devices (`--media
testsrc`), tests and benchmarks: a colour card and a sine tone that identify
the site, so a receiver can tell whose picture and voice it got."""

from __future__ import annotations

import asyncio
import fractions
import math
import time

import numpy as np
from aiortc import MediaStreamTrack
from av import AudioFrame, VideoFrame

AUDIO_RATE = 48000
VIDEO_CLOCK = 90000


class ToneTrack(MediaStreamTrack):
    """A continuous sine tone (silence when `muted`), 20 ms frames in real time."""

    kind = "audio"

    def __init__(self, frequency: float, amplitude: float = 0.3) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self.muted = False
        self._samples = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        samples = AUDIO_RATE // 50
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._samples / AUDIO_RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(samples) + self._samples) / AUDIO_RATE
        amplitude = 0.0 if self.muted else self.amplitude
        pcm = (amplitude * 32767 * np.sin(2 * math.pi * self.frequency * t)).astype(np.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._samples += samples
        return frame


class ColourCardTrack(MediaStreamTrack):
    """A solid colour picture (the site's identity) with a moving bar, in real time."""

    kind = "video"

    def __init__(self, colour: tuple[int, int, int], width: int = 320, height: int = 180,
                 fps: int = 15) -> None:
        super().__init__()
        self.colour = colour
        self.width, self.height, self.fps = width, height, fps
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._count / self.fps - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        image = np.empty((self.height, self.width, 3), dtype=np.uint8)
        image[:] = self.colour
        bar = (self._count * 8) % self.width
        image[:, bar:bar + 8] = 255 - np.array(self.colour, dtype=np.uint8)
        frame = VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self._count * (VIDEO_CLOCK // self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._count += 1
        return frame


def dominant_colour(frame: VideoFrame) -> tuple[int, int, int]:
    """The median colour of a decoded picture (robust to the moving bar)."""
    image = frame.to_ndarray(format="rgb24")
    median = np.median(image.reshape(-1, 3), axis=0)
    return (int(median[0]), int(median[1]), int(median[2]))


def tone_energy(samples: np.ndarray, frequency: float, rate: int = AUDIO_RATE) -> float:
    """Energy of `samples` at `frequency` (Goertzel), normalised by length."""
    x = samples.astype(np.float64).ravel()
    if x.size == 0:
        return 0.0
    k = 2 * math.cos(2 * math.pi * frequency / rate)
    s_prev = s_prev2 = 0.0
    for value in x:
        s = value + k * s_prev - s_prev2
        s_prev2, s_prev = s_prev, s
    return (s_prev2**2 + s_prev**2 - k * s_prev * s_prev2) / x.size
