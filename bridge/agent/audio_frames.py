"""Longer Opus frames from a site when the bridge asks for them (private API, pinned to
aiortc 1.16.0).

Every audio packet a site sends costs the bridge a datagram to receive, an
SRTP unprotect, a parse and a hand-over to the mixer, for each of 31 or more
sites: 60 ms packets are a third of 20 ms ones (docs/performance.md). The bridge
says what it wants in its audio answer with `a=ptime` and `a=maxptime`
(RFC 4566: the packet time it prefers to receive, and the longest it accepts;
setting `bridge_site_audio_frame_ms`); a browser may follow it, the agent
does (`answered_ptime`, `send_opus_frames_of`).

aiortc's Opus encoder always cuts 20 ms frames (its resampler's frame size,
libopus's default frame duration) and has no option for it; its sender makes
that encoder lazily, on the first frame, unless one is already set. So the
agent sets one of its own before the sender starts: aiortc's encoder with a
longer resampler frame and libopus's `frame_duration`. Only the name of the
sender's encoder attribute is private; `tests/test_agent_audio_frames.py`
checks it and that the packets come out 60 ms long."""

from __future__ import annotations

import re

from aiortc import RTCRtpSender
from aiortc.codecs.opus import SAMPLE_RATE, OpusEncoder
from av import AudioResampler

# Opus frame durations aiortc's encoder can be given here: one packet per frame.
FRAME_MS = (20, 40, 60)
_PTIME = re.compile(r"^a=ptime:(\d+)\s*$", re.MULTILINE)
_MAXPTIME = re.compile(r"^a=maxptime:(\d+)\s*$", re.MULTILINE)


def answered_ptime(sdp: str) -> int:
    """The Opus frame (ms) to send, from the far end's audio description: its `a=ptime`,
    capped by its `a=maxptime`, among 20, 40 and 60; 20 when it asks for nothing else."""
    ptime = _PTIME.search(sdp)
    if ptime is None:
        return 20
    wanted = int(ptime.group(1))
    maxptime = _MAXPTIME.search(sdp)
    if maxptime is not None:
        wanted = min(wanted, int(maxptime.group(1)))
    return max((ms for ms in FRAME_MS if ms <= wanted), default=20)


class LongFrameOpusEncoder(OpusEncoder):
    """aiortc's Opus encoder, cutting frames of `frame_ms` instead of 20 ms."""

    def __init__(self, frame_ms: int) -> None:
        if frame_ms not in FRAME_MS:
            raise ValueError(f"Opus frames of {FRAME_MS} ms only")
        super().__init__()
        self.frame_ms = frame_ms
        self.resampler = AudioResampler(format="s16", layout="stereo", rate=SAMPLE_RATE,
                                        frame_size=SAMPLE_RATE * frame_ms // 1000)
        self.codec.options = {"application": "voip", "frame_duration": str(frame_ms)}


def send_opus_frames_of(sender: RTCRtpSender, frame_ms: int) -> None:
    """Make `sender` (audio, not started yet) send Opus frames of `frame_ms`."""
    if frame_ms != 20:
        sender._RTCRtpSender__encoder = LongFrameOpusEncoder(frame_ms)  # type: ignore[attr-defined]
