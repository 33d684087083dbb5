"""Thin typed wrappers over PyAV's libopus encoder and decoder for the audio mixer.

Everything here is 48 kHz mono, as signed 16-bit samples (``numpy.int16``, one
dimension). Mono is enough for a conference mix of speech, and mono Opus packets
are valid on a stream negotiated as ``opus/48000/2``: the receiver plays them on
both channels. The decoder downmixes stereo packets to mono.

Behaviour of PyAV 18 / FFmpeg's libopus wrappers that this module relies on
(each is covered by tests/test_audio_mixer.py):

- The encoder returns exactly one packet for every full frame it is given, from
  the first frame on. libopus's look-ahead (312 samples) shows only as a negative
  pts on the packets, never as a packet held back; `OpusEncoder.encode` still
  checks the count, because a packet lost or doubled here would shift the whole
  stream.
- FFmpeg's libopus decoder exposes neither in-band FEC nor libopus's "lost
  packet" call, and an empty packet means end of stream to FFmpeg (the decoder
  would then refuse every later packet). Concealment uses the Opus rule instead
  (RFC 6716, 3.2.1): a packet that is only a TOC byte holds a frame of length
  zero, which libopus decodes as a lost frame, i.e. packet loss concealment
  extrapolated from the decoder's state. So `OpusDecoder.conceal` is real PLC,
  not silence (silence only before the first packet).

Costs per call, measured with a quick script on this 2-core machine while other
work kept it busy (load 4-6): CPU time of the calling thread, median per call,
ranges over runs; 32 kbit/s, speech-like input (noise shaped and modulated like
syllables; pure tones encode faster at complexity 10, which misleads):

| call | 20 ms frame | 60 ms frame |
| --- | --- | --- |
| `OpusEncoder.encode`, complexity 10 (libopus default) | 0.28-0.46 ms | 0.7-1.1 ms |
| `OpusEncoder.encode`, complexity 5 | 0.19-0.25 ms | 0.5-0.75 ms |
| `OpusDecoder.decode` | 0.035-0.08 ms | 0.12-0.23 ms |
| `OpusDecoder.conceal` | 0.02-0.05 ms | 0.05 ms |

PyAV's own share (building the `AudioFrame` and `Packet`, `bytes()`) is about
10 us of each call.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 48_000
# Opus frame durations (ms) that libopus can encode as one packet.
FRAME_DURATIONS_MS: tuple[float, ...] = (2.5, 5.0, 10.0, 20.0, 40.0, 60.0)

Pcm = npt.NDArray[np.int16]
_TIME_BASE = Fraction(1, SAMPLE_RATE)


def frame_samples_for(duration_ms: float) -> int:
    """Samples in one mono frame of `duration_ms` at 48 kHz (20 ms -> 960)."""
    if duration_ms not in FRAME_DURATIONS_MS:
        raise ValueError(f"Opus frame duration must be one of {FRAME_DURATIONS_MS} ms")
    return int(duration_ms * SAMPLE_RATE / 1000)


def silence(samples: int) -> Pcm:
    """`samples` zero samples, in the format the codecs use."""
    return np.zeros(samples, dtype=np.int16)


class OpusDecoder:
    """Decodes one site's Opus packets to 48 kHz mono int16; one instance per site.

    The decoder's state carries over between calls (Opus frames depend on the
    previous ones), so keep feeding the same instance the packets of one stream.
    """

    def __init__(self) -> None:
        self._ctx = av.CodecContext.create("libopus", "r")
        self._ctx.sample_rate = SAMPLE_RATE
        # Mono output: libopus downmixes stereo packets itself, for free.
        self._ctx.layout = "mono"
        self._ctx.open()
        # TOC byte of a frame-of-length-zero packet in the shape of the last one
        # decoded (see `conceal`); None until a packet has been decoded.
        self._lost_toc: bytes | None = None

    def decode(self, payload: bytes) -> Pcm:
        """The samples of one Opus packet (RTP payload): int16, mono, 48 kHz.

        Raises `ValueError` (PyAV's `InvalidDataError`) for a malformed packet; the
        decoder stays usable. An empty payload is treated as a lost packet, since
        FFmpeg would take it for the end of the stream.
        """
        if not payload:
            return self.conceal()
        frames = self._ctx.decode(av.Packet(payload))
        # Code 0 in the TOC's low bits: one frame, so the lost-frame packet
        # conceals one frame of this packet's configuration.
        self._lost_toc = bytes((payload[0] & 0xFC,))
        return _samples(frames)

    def conceal(self, samples: int | None = None) -> Pcm:
        """Packet loss concealment for a missing packet.

        Returns `samples` samples (default: one frame of the last packet's
        duration) extrapolated by libopus from what it decoded last, fading to
        silence over a few frames. Before the first packet it returns silence,
        as there is nothing to extrapolate from (then `samples` defaults to 960).
        """
        if self._lost_toc is None:
            return silence(960 if samples is None else samples)
        parts: list[Pcm] = []
        have = 0
        while True:
            pcm = _samples(self._ctx.decode(av.Packet(self._lost_toc)))
            parts.append(pcm)
            have += len(pcm)
            # An empty result cannot happen with libopus; never loop on one.
            if samples is None or have >= samples or not len(pcm):
                break
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if samples is None or len(out) == samples:
            return out
        if len(out) < samples:
            return np.concatenate([out, silence(samples - len(out))])
        # Concealed samples beyond the request are dropped: they are only guesses.
        return out[:samples]


class OpusEncoder:
    """Encodes 48 kHz mono int16 frames to Opus packets, one packet per frame.

    Each instance is one continuous stream (its own libopus state and pts); the
    pts is internal and is not the RTP timestamp, which the sender assigns.
    """

    def __init__(
        self,
        bitrate: int = 32_000,
        frame_duration_ms: float = 20,
        complexity: int = 10,
        application: str = "voip",
        expected_loss_percent: int = 0,
    ) -> None:
        """Open a libopus encoder.

        `complexity` (0-10) trades quality for CPU: on speech 5 costs about a
        third less than libopus's default 10. `application` is libopus's "voip" (tuned for
        speech), "audio" or "lowdelay". A nonzero `expected_loss_percent` turns on
        in-band FEC sized for that loss, which receivers such as Chromium use to
        recover a lost packet from the next one (at some cost in bitrate).
        """
        if not 0 <= complexity <= 10:
            raise ValueError("complexity must be between 0 and 10")
        if not 0 <= expected_loss_percent <= 100:
            raise ValueError("expected_loss_percent must be between 0 and 100")
        self.frame_samples = frame_samples_for(frame_duration_ms)
        self.bitrate = bitrate
        ctx = av.CodecContext.create("libopus", "w")
        ctx.sample_rate = SAMPLE_RATE
        ctx.layout = "mono"
        ctx.format = "s16"
        ctx.bit_rate = bitrate
        ctx.time_base = _TIME_BASE
        options = {
            "frame_duration": f"{frame_duration_ms:g}",
            "application": application,
            # FFmpeg passes compression_level to libopus as its complexity.
            "compression_level": str(complexity),
        }
        if expected_loss_percent:
            options |= {"fec": "1", "packet_loss": str(expected_loss_percent)}
        ctx.options = options
        ctx.open()
        self._ctx = ctx
        self._pts = 0

    def encode(self, pcm: Pcm) -> bytes:
        """One Opus packet for one frame of exactly `frame_samples` int16 mono samples."""
        if pcm.dtype != np.int16 or pcm.shape != (self.frame_samples,):
            raise ValueError(
                f"expected {self.frame_samples} int16 mono samples, "
                f"got {pcm.dtype} of shape {pcm.shape}"
            )
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = _TIME_BASE
        # Explicit pts, counted in samples, so FFmpeg need not guess one per frame.
        # The packets' pts (ours minus the 312-sample look-ahead) is not returned:
        # the RTP timestamp belongs to the sender, per outgoing stream.
        frame.pts = self._pts
        self._pts += self.frame_samples
        packets = self._ctx.encode(frame)
        if len(packets) != 1:
            raise RuntimeError(f"libopus returned {len(packets)} packets for one frame")
        return bytes(packets[0])


def _samples(frames: list[av.AudioFrame]) -> Pcm:
    """The mono int16 samples of decoded frames, as one 1-D array (usually a view)."""
    if len(frames) == 1:
        return _as_pcm(frames[0].to_ndarray())
    if not frames:
        return silence(0)
    return np.concatenate([_as_pcm(f.to_ndarray()) for f in frames])


def _as_pcm(array: npt.NDArray[Any]) -> Pcm:
    # libopus decodes to packed s16, shape (1, samples); float output would only
    # come from asking FFmpeg for it, which this module does not do.
    if array.dtype != np.int16:
        raise RuntimeError(f"libopus decoded to {array.dtype}, expected int16")
    out: Pcm = array.reshape(-1)
    return out
