"""A SIP room system's audio in the mixer: G.711 and G.722 to and from 48 kHz (FFmpeg's
codecs and tables read off them, libswresample down, our interpolator up), the level the
bridge measures itself, and the engine mixing for sites in their own codec, the common
mix encoded once per codec."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from bridge.agent.generated_media import tone_energy
from bridge.audio_engine import AudioEngine
from bridge.opus_codec import OpusEncoder, Pcm
from bridge.sip.audio_codecs import (
    CODECS,
    SharedMixEncoder,
    SipAudioDecoder,
    SipAudioEncoder,
    UpsampledPcm,
    Upsampler,
    _context,
    _samples,
    g711_tables,
    level_of,
)
from bridge.sip.sip_leg import SipPcmOutput

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
    native = [decoder.decode(p) for p in payloads]
    assert {len(n) for n in native} == {codec.sample_rate // 50}  # 20 ms at its own rate
    upsampler, to_48k = Upsampler(codec.sample_rate), UpsampledPcm(codec.sample_rate)
    decoded = np.concatenate([to_48k.decode(upsampler.chunk(n)) for n in native])
    assert len(decoded) == 50 * FRAME  # back at 48 kHz, a frame per payload
    steady = decoded[FRAME * 10:]
    assert tone_energy(steady, 700.0) > 100 * max(tone_energy(steady, 1500.0), 1.0)
    # No image of the tone above the codec's band (a zero-stuffed 8 kHz signal would
    # carry one at 8000 - 700 Hz, a 16 kHz one at 16000 - 700 Hz).
    image = codec.sample_rate - 700.0
    assert tone_energy(steady, image) < tone_energy(steady, 700.0) / 1000


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_the_g711_tables_are_ffmpegs_codec_bit_for_bit(name: str) -> None:
    codec = CODECS[name]
    decode_table, encode_table = g711_tables(codec.ffmpeg)
    payload = np.random.default_rng(3).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    ffmpeg_decoded = _samples(_context(codec, "r").decode(av.Packet(payload)))
    assert np.array_equal(SipAudioDecoder(codec).decode(payload), ffmpeg_decoded)
    samples = np.random.default_rng(4).integers(-32768, 32768, 4000).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = 8000, 0, Fraction(1, 8000)
    encoder = _context(codec, "w")
    ffmpeg_encoded = b"".join(bytes(p) for p in [*encoder.encode(frame), *encoder.encode(None)])
    assert encode_table[samples.view(np.uint16)].tobytes() == ffmpeg_encoded
    assert len(decode_table) == 256


def test_upsampling_chunk_by_chunk_is_the_continuous_filter() -> None:
    # A room's chunks are upsampled only when it is mixed, maybe not in a row: each chunk
    # carries its history, so any chunk gives what one continuous filter gives.
    rate = 8000
    source = tone(440.0, 10, rate=rate) + tone(1800.0, 10, 0.2, rate=rate)
    upsampler, to_48k = Upsampler(rate), UpsampledPcm(rate)
    chunks = [upsampler.chunk(source[i * 160:(i + 1) * 160]) for i in range(10)]
    whole = Upsampler(rate).chunk(source)
    assert np.array_equal(np.concatenate([to_48k.decode(c) for c in chunks]),
                          to_48k.decode(whole))
    # Only the last one, alone: the same samples as that part of the whole.
    assert np.array_equal(to_48k.decode(chunks[-1]), to_48k.decode(whole)[9 * FRAME:])


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
        self.common: list[bool] = []

    def push_pcm(self, pcm: Pcm, pts: int, common: bool) -> bool:
        self.pcm.append(pcm)
        self.common.append(common)
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
    engine.add_decoded_site("ROOM", sip, UpsampledPcm(8000))
    engine.add_site("TINH", browser)
    engine.audible = frozenset({"ROOM", "TINH"})
    encoder = OpusEncoder()
    room_tone, tinh_tone = tone(700.0, 60, rate=8000), tone(440.0, 60)
    upsampler = Upsampler(8000)
    for index in range(60):
        frame = slice(index * FRAME, (index + 1) * FRAME)
        room_frame = room_tone[index * 160:(index + 1) * 160]
        engine.on_decoded("ROOM", index, upsampler.chunk(room_frame), level_of(room_frame), 160)
        packet = RtpPacket(payload_type=96, sequence_number=index,
                           payload=encoder.encode(tinh_tone[frame]))
        packet.extensions.audio_level = (True, 10)
        engine.on_packet("TINH", packet)
        engine._tick()
    # The room system was loud: it is a speaker, and it hears the browser, not itself.
    assert "ROOM" in engine.detector.loudest(3)
    heard = np.concatenate(sip.pcm[-20:])
    assert tone_energy(heard, 440.0) > 50 * max(tone_energy(heard, 700.0), 1.0)
    assert not any(sip.common[-20:])  # its own mix-minus, not the common mix
    assert engine.stats["ROOM"].packets == 60 and engine.stats["ROOM"].lost == 0
    engine.remove_site("ROOM")
    assert "ROOM" not in engine.pcm_outputs and "ROOM" not in engine.mixer.sites


class SentPayloads:
    """Stands in for a SIP leg's RTP forwarder (the network edge): keeps the payloads."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def send_chunks(self, timestamp: int, chunks: tuple[bytes, ...]) -> bool:
        self.payloads.extend(chunks)
        return True


async def test_rooms_that_are_not_speaking_share_one_encoding_of_the_common_mix() -> None:
    engine = AudioEngine()
    codec = CODECS["G722"]
    shared = SharedMixEncoder(codec, FRAME)
    rooms = {f"ROOM{i}": SentPayloads() for i in range(4)}
    own: dict[str, SipAudioEncoder] = {}
    for code, sent in rooms.items():
        own[code] = SipAudioEncoder(codec, FRAME)
        engine.add_decoded_site(code, SipPcmOutput(sent, own[code], shared),  # type: ignore[arg-type]
                                UpsampledPcm(codec.sample_rate))
    browser = Packets()
    engine.add_site("TINH", browser)
    engine.audible = frozenset({*rooms, "TINH"})
    encoder, speech = OpusEncoder(), tone(440.0, 30)
    upsampler = Upsampler(codec.sample_rate)
    loud_room = tone(700.0, 30, rate=codec.sample_rate)
    for index in range(30):
        packet = RtpPacket(payload_type=96, sequence_number=index,
                           payload=encoder.encode(speech[index * FRAME:(index + 1) * FRAME]))
        packet.extensions.audio_level = (True, 10)
        engine.on_packet("TINH", packet)
        part = loud_room[index * 320:(index + 1) * 320]
        engine.on_decoded("ROOM0", index, upsampler.chunk(part), level_of(part), 160)
        engine._tick()
    # Thirty frames: the common mix was encoded once a frame for the three quiet rooms,
    # who got the same payloads; the speaking room got its own mix-minus.
    assert shared.encoder.encodes == 30
    assert rooms["ROOM1"].payloads == rooms["ROOM2"].payloads == rooms["ROOM3"].payloads
    assert len(rooms["ROOM1"].payloads) == 30
    assert own["ROOM1"].encodes == own["ROOM2"].encodes == own["ROOM3"].encodes == 0
    assert own["ROOM0"].encodes == 30 and rooms["ROOM0"].payloads != rooms["ROOM1"].payloads
    decoder, to_48k, up = SipAudioDecoder(codec), UpsampledPcm(codec.sample_rate), Upsampler(
        codec.sample_rate)
    heard = np.concatenate([to_48k.decode(up.chunk(decoder.decode(p)))
                            for p in rooms["ROOM1"].payloads[10:]])
    # A quiet room hears both the browser and the speaking room.
    assert tone_energy(heard, 440.0) > 1000 and tone_energy(heard, 700.0) > 1000

