"""The audio codecs of SIP room systems, to and from the mixer's 48 kHz mono int16.

A SIP leg negotiates one of G.722 (16 kHz audio on an 8 kHz RTP clock, RFC 3551),
PCMU or PCMA (G.711, 8 kHz) or Opus. The mixer works at 48 kHz. What costs what
decides the shape, since every room's audio is decoded on arrival (its level is
measured here, RFC 6464 being absent) but only the few loudest are mixed:

- `SipAudioDecoder` decodes each payload at the codec's own rate: G.711 by table (the
  tables are FFmpeg's own codec, read once), G.722 by FFmpeg's decoder. The level is
  measured on those samples.
- `Upsampler` / `UpsampledPcm` bring them to 48 kHz only when the mixer takes them,
  i.e. while the room is among the speakers: the leg queues each packet's samples with
  the filter's history in front (`Upsampler.chunk`), so any chunk can be upsampled on
  its own, later or never, with the same result as a continuous filter.
- `SipAudioEncoder` turns a 48 kHz mix into one payload of the same duration,
  resampled down with libswresample's anti-aliasing filter (a plain decimation would
  fold the mix's 4-24 kHz content into the telephone band) and buffered so that every
  payload holds exactly one frame.
- `SharedMixEncoder`: every room that is not speaking hears the same common mix, so it
  is encoded once per codec and frame for all of them, as Asterisk's softmix bridge
  shares one translation among its listeners; only a speaking room gets its own
  (mix-minus) encoding.

Opus sites use the mixer's Opus path (`bridge/opus_codec.py`): "Opus stays Opus".
Costs measured on this machine are in docs/sip-media.md."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import av
import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from bridge.opus_codec import SAMPLE_RATE, OpusDecoder, Pcm, silence

# The upsampling filter's length at 48 kHz (a Kaiser-windowed sinc): its transition band
# is about 1.5 kHz wide, enough to keep the images of 8 or 16 kHz audio out of the mix.
UPSAMPLING_FILTER = 144
KAISER_BETA = 7.0


@dataclass(frozen=True)
class SipAudioCodec:
    """One negotiable codec: its SDP name, FFmpeg codec, audio rate, RTP clock."""

    name: str  # as in the SDP rtpmap ("PCMU")
    ffmpeg: str
    sample_rate: int  # of the audio itself
    rtp_clock: int  # of the RTP timestamps (G.722's is 8000, RFC 3551 section 4.5.2)
    frame_size: int  # samples per encoder frame; 0: any

    @property
    def by_table(self) -> bool:
        """G.711: one byte per sample, a fixed table each way."""
        return self.ffmpeg in ("pcm_mulaw", "pcm_alaw")


CODECS = {
    "PCMU": SipAudioCodec("PCMU", "pcm_mulaw", 8000, 8000, 0),
    "PCMA": SipAudioCodec("PCMA", "pcm_alaw", 8000, 8000, 0),
    "G722": SipAudioCodec("G722", "g722", 16000, 8000, 320),
}


def _context(codec: SipAudioCodec, mode: Literal["r", "w"]) -> Any:
    ctx: Any = av.CodecContext.create(codec.ffmpeg, mode)
    ctx.sample_rate = codec.sample_rate
    ctx.layout = "mono"
    if mode == "w":
        ctx.format = "s16"
        ctx.time_base = Fraction(1, codec.sample_rate)
    ctx.open()
    return ctx


def _mono_frame(pcm: Pcm, rate: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm).reshape(1, -1),
                                       format="s16", layout="mono")
    frame.sample_rate = rate
    return frame


def _samples(frames: list[av.AudioFrame]) -> Pcm:
    if not frames:
        return silence(0)
    # The decoders give s16 mono: the plane's bytes are the samples (to_ndarray costs
    # about four times as much, per packet).
    parts = [np.frombuffer(memoryview(f.planes[0]), dtype=np.int16, count=f.samples)
             for f in frames]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


@functools.cache
def g711_tables(ffmpeg: str) -> tuple[Pcm, npt.NDArray[np.uint8]]:
    """The decode table (byte to sample) and encode table (sample, as uint16, to byte) of
    a G.711 law, read off FFmpeg's own codec once, so both stay bit-exact with it."""
    codec = next(c for c in CODECS.values() if c.ffmpeg == ffmpeg)
    decoded = _samples(_context(codec, "r").decode(av.Packet(bytes(range(256)))))
    every_sample = np.arange(-32768, 32768, dtype=np.int16)
    frame = _mono_frame(every_sample, codec.sample_rate)
    frame.time_base, frame.pts = Fraction(1, codec.sample_rate), 0
    encoder = _context(codec, "w")
    encoded = b"".join(bytes(p) for p in [*encoder.encode(frame), *encoder.encode(None)])
    encode_table = np.zeros(65536, dtype=np.uint8)
    encode_table[every_sample.view(np.uint16)] = np.frombuffer(encoded, dtype=np.uint8)
    return decoded.copy(), encode_table


class SipAudioDecoder:
    """Decodes one SIP site's G.711/G.722 payloads at the codec's own rate."""

    def __init__(self, codec: SipAudioCodec) -> None:
        self.codec = codec
        self._table: Pcm | None = g711_tables(codec.ffmpeg)[0] if codec.by_table else None
        self._ctx: Any = None if codec.by_table else _context(codec, "r")

    def decode(self, payload: bytes) -> Pcm:
        """The samples of one payload at `codec.sample_rate` (malformed: ValueError)."""
        if self._table is not None:
            return self._table[np.frombuffer(payload, dtype=np.uint8)]
        return _samples(self._ctx.decode(av.Packet(payload)))


@functools.cache
def _upsampling_phases(factor: int) -> npt.NDArray[np.float32]:
    """The polyphase matrix of a windowed-sinc interpolator by `factor`: column p makes
    the p-th of every `factor` output samples from the last `taps` input samples."""
    length = UPSAMPLING_FILTER
    n = np.arange(length) - (length - 1) / 2
    prototype = np.sinc(n / factor) * np.kaiser(length, KAISER_BETA)
    prototype *= factor / prototype.sum()  # unit gain once zeros are stuffed in
    taps = length // factor
    # Output n*factor + p = sum over k of h[p + k*factor] * x[n - k]; the window holds
    # x[n - taps + 1] .. x[n], oldest first.
    return prototype.reshape(taps, factor)[::-1].astype(np.float32)


def upsampling_taps(rate: int) -> int:
    """Input samples each 48 kHz output sample of `rate` audio is made from."""
    return UPSAMPLING_FILTER // (SAMPLE_RATE // rate)


class Upsampler:
    """Prepares one site's samples for `UpsampledPcm`: each chunk carries the filter's
    history (the last samples before it), so it can be upsampled alone."""

    def __init__(self, rate: int) -> None:
        self._history = silence(upsampling_taps(rate) - 1)

    def chunk(self, samples: Pcm) -> bytes:
        """`samples` with their history in front, as the mixer queues them."""
        joined = np.concatenate((self._history, samples))
        self._history = joined[len(joined) - len(self._history):]
        return joined.tobytes()


class UpsampledPcm:
    """The mixer's "decoder" of a SIP site's chunks (`Upsampler.chunk`): 48 kHz samples,
    made only for the frames the site is mixed in. A missing chunk is silence (the SIP
    codecs have no concealment of their own)."""

    def __init__(self, rate: int) -> None:
        self._phases = _upsampling_phases(SAMPLE_RATE // rate)
        self._taps = self._phases.shape[0]
        self._windows: dict[int, npt.NDArray[np.intp]] = {}  # by chunk length

    def decode(self, payload: bytes) -> Pcm:
        """The 48 kHz samples of one chunk."""
        chunk = np.frombuffer(payload, dtype=np.int16).astype(np.float32)
        windows = self._windows.get(len(chunk))
        if windows is None:
            # Gathering the windows into one contiguous matrix is several times faster
            # than a matrix product over a strided view of them.
            windows = sliding_window_view(np.arange(len(chunk)), self._taps).copy()
            self._windows[len(chunk)] = windows
        out = (chunk[windows] @ self._phases).reshape(-1)
        samples: Pcm = np.clip(np.rint(out), -32768, 32767).astype(np.int16)
        return samples

    def conceal(self, samples: int | None = None) -> Pcm:
        """Silence."""
        return silence(960 if samples is None else samples)


class OpusLevelDecoder:
    """An Opus SIP site's decoder: the same 48 kHz samples, from the mixer's Opus codec."""

    def __init__(self) -> None:
        self._decoder = OpusDecoder()

    def decode(self, payload: bytes) -> Pcm:
        """The samples of one Opus packet (malformed: ValueError)."""
        return self._decoder.decode(payload)


class SipAudioEncoder:
    """Encodes the mixer's 48 kHz frames for a SIP site, one payload per frame."""

    def __init__(self, codec: SipAudioCodec, frame_samples_48k: int) -> None:
        self.codec = codec
        self._table = g711_tables(codec.ffmpeg)[1] if codec.by_table else None
        self._ctx: Any = None if codec.by_table else _context(codec, "w")
        self._down = av.AudioResampler(format="s16", layout="mono", rate=codec.sample_rate)
        self.frame_samples = frame_samples_48k * codec.sample_rate // SAMPLE_RATE
        # The resampler's filter delay shows as a short first output: start with that
        # much silence in hand, so every payload is exactly one frame from the first.
        self._pending = silence(0)
        self._pts = 0
        self.encodes = 0

    @property
    def rtp_samples(self) -> int:
        """RTP timestamp units per payload."""
        return self.frame_samples * self.codec.rtp_clock // self.codec.sample_rate

    def encode(self, pcm: Pcm) -> bytes:
        """One payload of one frame's duration for one mixer frame (48 kHz int16 mono)."""
        self.encodes += 1
        frame = _mono_frame(pcm, SAMPLE_RATE)
        frame.pts = None  # let the resampler count
        down = _samples(self._down.resample(frame))
        pending = np.concatenate([self._pending, down]) if len(self._pending) else down
        if len(pending) < self.frame_samples:
            pending = np.concatenate([silence(self.frame_samples - len(pending)), pending])
        chunk, self._pending = pending[:self.frame_samples], pending[self.frame_samples:]
        if self._table is not None:
            return self._table[chunk.view(np.uint16)].tobytes()
        step = self.codec.frame_size or self.frame_samples
        out: list[bytes] = []
        for start in range(0, self.frame_samples, step):
            part = _mono_frame(chunk[start:start + step], self.codec.sample_rate)
            part.time_base = Fraction(1, self.codec.sample_rate)
            part.pts = self._pts
            self._pts += step
            out.extend(bytes(p) for p in self._ctx.encode(part))
        return b"".join(out)


class SharedMixEncoder:
    """The common mix in one codec, encoded once per frame for every site that hears it.

    A G.722 room moving between its own encoding (while it speaks) and this one hears a
    few milliseconds of ADPCM re-adaptation; G.711 has no state, so nothing changes."""

    def __init__(self, codec: SipAudioCodec, frame_samples_48k: int) -> None:
        self.encoder = SipAudioEncoder(codec, frame_samples_48k)
        self._pts: int | None = None
        self._payload = b""

    def encode(self, pcm: Pcm, pts: int) -> bytes:
        """The payload of frame `pts` (`pcm` is the same for every caller of a frame)."""
        if pts != self._pts:
            self._pts, self._payload = pts, self.encoder.encode(pcm)
        return self._payload


def level_of(pcm: Pcm) -> int:
    """The RFC 6464 level of some samples: -dBov, 0 (loudest) to 127 (silence)."""
    if not len(pcm):
        return 127
    floats = pcm.astype(np.float64)
    # Python floats from here: numpy's scalar sqrt, log10 and round cost several
    # microseconds a packet.
    rms = math.sqrt(float(floats.dot(floats)) / len(floats))
    if rms < 1.0:
        return 127
    return int(min(127, max(0, round(-20 * math.log10(rms / 32768)))))
