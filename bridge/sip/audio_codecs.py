"""The audio codecs of SIP room systems, to and from the mixer's 48 kHz mono int16.

A SIP leg negotiates one of G.722 (16 kHz audio on an 8 kHz RTP clock, RFC 3551),
PCMU or PCMA (G.711, 8 kHz) or Opus. The mixer works at 48 kHz, so:

- `SipAudioDecoder` turns each received payload into 48 kHz samples (FFmpeg's
  decoder, then libswresample, whose filter keeps state across packets: its first
  output is a little shorter, the delay of its filter; the mixer carries over
  uneven lengths);
- `SipAudioEncoder` turns the mixer's frame into one payload of the same duration
  in the negotiated codec, resampled down with an anti-aliasing filter (a plain
  decimation would fold the mix's 4-24 kHz content into the telephone band). The
  resampler's output is buffered so that every payload holds exactly one frame.

Opus sites use the mixer's Opus path (`bridge/opus_codec.py`): "Opus stays Opus".
Costs measured on this machine are in docs/sip.md."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from bridge.opus_codec import SAMPLE_RATE, OpusDecoder, Pcm, silence


@dataclass(frozen=True)
class SipAudioCodec:
    """One negotiable codec: its SDP name, FFmpeg codec, audio rate, RTP clock."""

    name: str  # as in the SDP rtpmap ("PCMU")
    ffmpeg: str
    sample_rate: int  # of the audio itself
    rtp_clock: int  # of the RTP timestamps (G.722's is 8000, RFC 3551 section 4.5.2)
    frame_size: int  # samples per encoder frame; 0: any


CODECS = {
    "PCMU": SipAudioCodec("PCMU", "pcm_mulaw", 8000, 8000, 0),
    "PCMA": SipAudioCodec("PCMA", "pcm_alaw", 8000, 8000, 0),
    "G722": SipAudioCodec("G722", "g722", 16000, 8000, 320),
}


def _resampler(rate: int) -> av.AudioResampler:
    return av.AudioResampler(format="s16", layout="mono", rate=rate)


def _frame(pcm: Pcm, rate: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    frame.pts = None  # let the resampler count; the RTP timestamps are the sender's
    return frame


def _samples(frames: list[av.AudioFrame]) -> Pcm:
    if not frames:
        return silence(0)
    parts = [f.to_ndarray().reshape(-1).astype(np.int16, copy=False) for f in frames]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class SipAudioDecoder:
    """Decodes one SIP site's G.711/G.722 payloads to 48 kHz mono int16."""

    def __init__(self, codec: SipAudioCodec) -> None:
        self.codec = codec
        ctx: Any = av.CodecContext.create(codec.ffmpeg, "r")
        ctx.sample_rate = codec.sample_rate
        ctx.layout = "mono"
        ctx.open()
        self._ctx = ctx
        self._up = _resampler(SAMPLE_RATE)

    def decode(self, payload: bytes) -> Pcm:
        """The 48 kHz samples of one payload (a malformed one raises ValueError)."""
        decoded = _samples(self._ctx.decode(av.Packet(payload)))
        if not len(decoded):
            return decoded
        return _samples(self._up.resample(_frame(decoded, self.codec.sample_rate)))


class OpusLevelDecoder:
    """An Opus SIP site's decoder: the same 48 kHz samples, from the mixer's Opus codec."""

    def __init__(self) -> None:
        self._decoder = OpusDecoder()

    def decode(self, payload: bytes) -> Pcm:
        """The samples of one Opus packet (malformed: ValueError)."""
        return self._decoder.decode(payload)


class SipAudioEncoder:
    """Encodes the mixer's 48 kHz frames for one SIP site, one payload per frame."""

    def __init__(self, codec: SipAudioCodec, frame_samples_48k: int) -> None:
        self.codec = codec
        ctx: Any = av.CodecContext.create(codec.ffmpeg, "w")
        ctx.sample_rate = codec.sample_rate
        ctx.layout = "mono"
        ctx.format = "s16"
        ctx.time_base = Fraction(1, codec.sample_rate)
        ctx.open()
        self._ctx = ctx
        self._down = _resampler(codec.sample_rate)
        self.frame_samples = frame_samples_48k * codec.sample_rate // SAMPLE_RATE
        # The resampler's filter delay shows as a short first output: start with that
        # much silence in hand, so every payload is exactly one frame from the first.
        self._pending = silence(0)
        self._pts = 0

    @property
    def rtp_samples(self) -> int:
        """RTP timestamp units per payload."""
        return self.frame_samples * self.codec.rtp_clock // self.codec.sample_rate

    def encode(self, pcm: Pcm) -> bytes:
        """One payload of one frame's duration for one mixer frame (48 kHz int16 mono)."""
        down = _samples(self._down.resample(_frame(pcm, SAMPLE_RATE)))
        pending = np.concatenate([self._pending, down]) if len(self._pending) else down
        if len(pending) < self.frame_samples:
            pending = np.concatenate([silence(self.frame_samples - len(pending)), pending])
        chunk, self._pending = pending[:self.frame_samples], pending[self.frame_samples:]
        step = self.codec.frame_size or self.frame_samples
        out: list[bytes] = []
        for start in range(0, self.frame_samples, step):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk[start:start + step]).reshape(1, -1),
                format="s16", layout="mono")
            frame.sample_rate = self.codec.sample_rate
            frame.time_base = Fraction(1, self.codec.sample_rate)
            frame.pts = self._pts
            self._pts += step
            out.extend(bytes(p) for p in self._ctx.encode(frame))
        return b"".join(out)


def level_of(pcm: Pcm) -> int:
    """The RFC 6464 level of some samples: -dBov, 0 (loudest) to 127 (silence)."""
    if not len(pcm):
        return 127
    rms = float(np.sqrt(np.mean(np.square(pcm.astype(np.float32)))))
    if rms < 1.0:
        return 127
    return int(min(127, max(0, round(-20 * np.log10(rms / 32768)))))
