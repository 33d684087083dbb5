"""A SIP room system's audio in the mixer: G.711 and G.722 to and from 48 kHz through the
real codecs (PyAV), the level the bridge measures itself, and the engine mixing for a
site in its own codec."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from bridge.agent.generated_media import tone_energy
from bridge.audio_engine import AudioEngine
from bridge.audio_mixer import DecodedPcm
from bridge.opus_codec import OpusEncoder, Pcm
from bridge.sip.audio_codecs import CODECS, SipAudioDecoder, SipAudioEncoder, level_of

FRAME = 960  # 20 ms at 48 kHz


def tone(frequency: float, frames: int, amplitude: float = 0.3, rate: int = 48000) -> Pcm:
    t = np.arange(frames * FRAME * rate // 48000) / rate
    return (np.sin(2 * math.pi * frequency * t) * amplitude * 32767).astype(np.int16)


@pytest.mark.parametrize("name", ["PCMU", "PCMA", "G722"])
def test_a_tone_survives_the_codec_both_ways(name: str) -> None:
    codec = CODECS[name]
    encoder = SipAudioEncoder(codec, FRAME)
    decoder = SipAudioDecoder(codec)
    source = tone(700.0, 50)
    payloads = [encoder.encode(source[i * FRAME:(i + 1) * FRAME]) for i in range(50)]
    # One payload per frame, of one frame's duration: 160 bytes (G.711: a byte per 8 kHz
    # sample; G.722: 4 bits per 16 kHz sample).
    assert {len(p) for p in payloads} == {160}
    assert encoder.rtp_samples == 160  # G.722's RTP clock is 8 kHz too (RFC 3551)
    decoded = np.concatenate([decoder.decode(p) for p in payloads])
    assert abs(len(decoded) - 50 * FRAME) < FRAME  # back at 48 kHz (the filter's delay)
    steady = decoded[FRAME * 10:]
    assert tone_energy(steady, 700.0) > 100 * max(tone_energy(steady, 1500.0), 1.0)


def test_the_mix_is_filtered_before_it_goes_down_to_8_khz() -> None:
    # A 6 kHz tone cannot be carried by G.711; without the anti-aliasing filter it would
    # fold to 2 kHz in the telephone band.
    codec = CODECS["PCMU"]
    encoder, decoder = SipAudioEncoder(codec, FRAME), SipAudioDecoder(codec)
    high = tone(6000.0, 30)
    decoded = np.concatenate([decoder.decode(encoder.encode(high[i * FRAME:(i + 1) * FRAME]))
                              for i in range(30)])[FRAME * 5:]
    assert tone_energy(decoded, 2000.0) < tone_energy(tone(2000.0, 25), 2000.0) / 100


def test_the_level_is_measured_from_the_samples() -> None:
    assert level_of(np.zeros(960, dtype=np.int16)) == 127
    loud, quiet = level_of(tone(440.0, 1, 0.9)), level_of(tone(440.0, 1, 0.01))
    assert loud < 5 and 35 < quiet < 45  # -dBov: 0.01 of full scale ≈ -43 dBov (RMS)
    assert level_of(np.zeros(0, dtype=np.int16)) == 127


class Captured:
    """A SIP site's output that keeps the samples the engine sends it."""

    def __init__(self) -> None:
        self.pcm: list[Pcm] = []

    def push_pcm(self, pcm: Pcm, pts: int) -> bool:
        self.pcm.append(pcm)
        return True


class Packets:
    """A browser's output that keeps the Opus packets."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def push(self, data: bytes, pts: int, time_base: Fraction) -> bool:
        self.packets.append(data)
        return True


async def test_a_decoded_site_is_mixed_by_its_level_and_gets_samples_back() -> None:
    engine = AudioEngine()
    sip, browser = Captured(), Packets()
    engine.add_decoded_site("ROOM", sip, DecodedPcm())
    engine.add_site("TINH", browser)
    engine.audible = frozenset({"ROOM", "TINH"})
    encoder = OpusEncoder()
    room_tone, tinh_tone = tone(700.0, 60), tone(440.0, 60)
    for index in range(60):
        frame = slice(index * FRAME, (index + 1) * FRAME)
        engine.on_decoded("ROOM", index, room_tone[frame], level_of(room_tone[frame]), 160)
        packet = RtpPacket(payload_type=96, sequence_number=index,
                           payload=encoder.encode(tinh_tone[frame]))
        packet.extensions.audio_level = (True, 10)
        engine.on_packet("TINH", packet)
        engine._tick()
    # The room system was loud: it is a speaker, and it hears the browser, not itself.
    assert "ROOM" in engine.detector.loudest(3)
    heard = np.concatenate(sip.pcm[-20:])
    assert tone_energy(heard, 440.0) > 50 * max(tone_energy(heard, 700.0), 1.0)
    assert engine.stats["ROOM"].packets == 60 and engine.stats["ROOM"].lost == 0
    engine.remove_site("ROOM")
    assert "ROOM" not in engine.pcm_outputs and "ROOM" not in engine.mixer.sites
