"""The tone in a WAV file a real endpoint wrote (baresip's `sndfile` dump of what it
decoded), for the SIP media tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def wav_tone_energy(path: Path, frequency: float, seconds: float = 2.0) -> float:
    """Share of the energy of the last `seconds` of a 16-bit WAV at `frequency` (±20 Hz).

    Read by hand: while baresip still writes the file its chunk sizes are not final, so
    the samples are whatever follows the data chunk's header."""
    raw = path.read_bytes()
    fmt, data = raw.find(b"fmt "), raw.find(b"data")
    if fmt < 0 or data < 0 or len(raw) < data + 8:
        return 0.0
    channels = int.from_bytes(raw[fmt + 10:fmt + 12], "little") or 1
    rate = int.from_bytes(raw[fmt + 12:fmt + 16], "little")
    body = raw[data + 8:]
    samples = np.frombuffer(body[:len(body) // 2 * 2], dtype=np.int16)[::channels]
    samples = samples[-int(rate * seconds):].astype(np.float64)
    if not rate or len(samples) < rate // 10:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    total = float(spectrum[freqs > 50].sum())
    band = float(spectrum[(freqs > frequency - 20) & (freqs < frequency + 20)].sum())
    return band / total if total else 0.0
