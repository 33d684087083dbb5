"""Whether the camera and the microphone are there and working, probed for real.

- A camera device is there when its device node can be opened for reading now
  (`camera_openable`): an unplugged USB camera loses its node at once, so the
  next heartbeat says so. Opening a V4L2 node does not start a capture and is
  allowed while another file handle streams from it.
- A microphone device is there when the ALSA device opens and delivers frames
  that are not all digital silence (`probe_microphone`, a short capture when
  the agent is in no conference; during a conference `SoundWatch` looks at the
  frames the agent sends anyway). A muted or unplugged input of a sound card
  delivers exact zeros; a real microphone in a quiet room still delivers its
  noise floor."""

from __future__ import annotations

import contextlib
import os
import stat
import time
from dataclasses import dataclass

import numpy as np
from av import AudioFrame

# A frame whose loudest sample is at most this (16-bit units) is digital silence: a
# microphone's own noise in a quiet room is well above it.
SILENCE_PEAK = 2
# A probe of an idle microphone: at most this long, and this many frames are enough.
PROBE_SECONDS = 0.3
PROBE_FRAMES = 5


def is_device_path(path: str) -> bool:
    """Whether `path` names a device: under /dev/, or a character device node elsewhere."""
    if path.startswith("/dev/"):
        return True
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def camera_openable(path: str) -> bool:
    """Whether the camera's device node is there and can be opened for reading now."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(descriptor)
    return True


def peak(frame: AudioFrame) -> int:
    """The loudest sample of `frame`, in 16-bit units (float formats scaled)."""
    samples = frame.to_ndarray()
    if samples.size == 0:
        return 0
    if samples.dtype.kind == "f":
        return int(np.max(np.abs(samples)) * 32767)
    biggest = int(np.max(np.abs(samples.astype(np.int64))))
    bits = samples.dtype.itemsize * 8
    return biggest >> (bits - 16) if bits > 16 else biggest


def probe_microphone(device: str, seconds: float = PROBE_SECONDS) -> bool:
    """Open the ALSA capture device `device`, read a few frames, close it: True when it
    delivered a frame that is not digital silence. Blocking (run it in a thread)."""
    import av  # PyAV's demuxers: only a device source needs them

    try:
        container = av.open(device, format="alsa")
    except (OSError, ValueError, av.FFmpegError):
        return False
    try:
        deadline = time.monotonic() + seconds
        for count, frame in enumerate(container.decode(audio=0)):
            if peak(frame) > SILENCE_PEAK:
                return True
            if count + 1 >= PROBE_FRAMES and time.monotonic() > deadline:
                return False
        return False
    except (OSError, ValueError, av.FFmpegError):
        return False
    finally:
        with contextlib.suppress(Exception):
            container.close()


@dataclass
class SoundWatch:
    """Counts the frames a microphone delivers, and those that are not silence."""

    frames: int = 0
    sounding: int = 0

    def saw(self, frame: AudioFrame) -> None:
        """A frame came from the microphone."""
        self.frames += 1
        if peak(frame) > SILENCE_PEAK:
            self.sounding += 1

    def take(self) -> tuple[int, int]:
        """(frames, frames not silent) since the last call."""
        counts = (self.frames, self.sounding)
        self.frames = self.sounding = 0
        return counts
