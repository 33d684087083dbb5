"""The Opus wrappers and the audio mixer, with real libopus encoding and decoding.

Each site sends a sine tone of its own frequency, encoded as a site would; what
the mixer sends is decoded again and its spectrum says whose voice is in it.
"""

from __future__ import annotations

from collections.abc import Iterable

import av
import numpy as np
import numpy.typing as npt
import pytest

from bridge.audio_mixer import AudioMixer, MixResult
from bridge.opus_codec import SAMPLE_RATE, OpusDecoder, OpusEncoder, Pcm

TONES = {"A": 300.0, "B": 500.0, "C": 700.0}
# Frames skipped at the start of a decoded stream: codec start-up.
WARMUP_FRAMES = 10


class ToneSite:
    """A site that speaks one continuous sine tone, Opus-encoded like a real one."""

    def __init__(self, freq: float, frame_samples: int = 960, amplitude: float = 8000) -> None:
        self.freq = freq
        self.amplitude = amplitude
        self.frame_samples = frame_samples
        self.encoder = OpusEncoder(frame_duration_ms=frame_samples * 1000 / SAMPLE_RATE)
        self._n = 0

    def next_packet(self) -> bytes:
        t = (self._n + np.arange(self.frame_samples)) / SAMPLE_RATE
        self._n += self.frame_samples
        pcm = (self.amplitude * np.sin(2 * np.pi * self.freq * t)).astype(np.int16)
        return self.encoder.encode(pcm)


def decode_stream(packets: Iterable[bytes]) -> Pcm:
    """What a receiver plays: the packets decoded in order by one decoder."""
    decoder = OpusDecoder()
    return np.concatenate([decoder.decode(p) for p in packets])


def level_db(pcm: Pcm, freq: float) -> float:
    """Energy (dB, arbitrary reference) in a narrow band around `freq`."""
    x = pcm.astype(np.float64) * np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / SAMPLE_RATE)
    band = (freqs > freq - 15) & (freqs < freq + 15)
    return float(10 * np.log10(spectrum[band].sum() + 1e-9))


def rms(pcm: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))


def run_conference(
    mixer: AudioMixer, speakers: list[str], ticks: int, frame_samples: int = 960
) -> list[MixResult]:
    """Sites A, B, C (tones) push a packet each tick; the mixer mixes `speakers`."""
    sites = {code: ToneSite(freq, frame_samples) for code, freq in TONES.items()}
    for code in sites:
        mixer.add_site(code)
    results = []
    for _ in range(ticks):
        for code, site in sites.items():
            mixer.push(code, site.next_packet())
        results.append(mixer.mix(speakers))
    return results


# --- OpusEncoder / OpusDecoder ----------------------------------------------------


@pytest.mark.parametrize("duration_ms, samples", [(20, 960), (60, 2880)])
def test_encoder_gives_one_packet_per_frame_from_the_first(duration_ms: int, samples: int) -> None:
    site = ToneSite(440.0, samples)
    assert site.encoder.frame_samples == samples
    decoder = OpusDecoder()
    for _ in range(30):
        packet = site.next_packet()  # encode() raises unless libopus gave exactly one packet
        assert isinstance(packet, bytes) and packet
        assert len(decoder.decode(packet)) == samples


def test_encoder_options_are_applied() -> None:
    pcm = (8000 * np.sin(2 * np.pi * 440 * np.arange(960) / SAMPLE_RATE)).astype(np.int16)
    plain, with_fec = OpusEncoder(), OpusEncoder(expected_loss_percent=10)
    plain_bytes = sum(len(plain.encode(pcm)) for _ in range(20))
    fec_bytes = sum(len(with_fec.encode(pcm)) for _ in range(20))
    assert fec_bytes > plain_bytes  # the in-band FEC data costs bits
    low = OpusEncoder(bitrate=12_000)
    assert sum(len(low.encode(pcm)) for _ in range(20)) < plain_bytes / 2


def test_encoder_rejects_a_frame_of_the_wrong_size_or_type() -> None:
    encoder = OpusEncoder()
    with pytest.raises(ValueError):
        encoder.encode(np.zeros(480, dtype=np.int16))
    with pytest.raises(ValueError):
        encoder.encode(np.zeros(960, dtype=np.float32))
    with pytest.raises(ValueError):
        OpusEncoder(frame_duration_ms=30)


def test_decoder_round_trip_keeps_the_tone() -> None:
    site = ToneSite(440.0)
    pcm = decode_stream(site.next_packet() for _ in range(50))
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    tail = pcm[WARMUP_FRAMES * 960 :]
    assert level_db(tail, 440.0) - level_db(tail, 1000.0) > 30
    assert 4000 < rms(tail) < 7000  # 8000 peak sine: rms 5657


def test_decoder_downmixes_stereo_packets() -> None:
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = SAMPLE_RATE
    ctx.layout = "stereo"
    ctx.format = "s16"
    ctx.bit_rate = 64_000
    ctx.open()
    decoder = OpusDecoder()
    t = np.arange(960 * 20) / SAMPLE_RATE
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    out = []
    for i in range(20):
        chunk = tone[i * 960 : (i + 1) * 960]
        frame = av.AudioFrame.from_ndarray(
            np.stack([chunk, chunk]).T.reshape(1, -1).copy(), format="s16", layout="stereo"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = i * 960
        out += [decoder.decode(bytes(p)) for p in ctx.encode(frame)]
    pcm = np.concatenate(out)
    assert len(out[-1]) == 960
    assert rms(pcm[WARMUP_FRAMES * 960 :]) > 4000


def test_conceal_extrapolates_then_fades_and_the_decoder_goes_on() -> None:
    decoder = OpusDecoder()
    assert not decoder.conceal().any()  # nothing decoded yet: silence
    assert len(decoder.conceal(2880)) == 2880
    site = ToneSite(440.0)
    for _ in range(20):
        decoder.decode(site.next_packet())
    lost = [decoder.conceal() for _ in range(10)]
    assert all(len(x) == 960 for x in lost)
    assert rms(lost[0]) > 1000  # real concealment, not silence
    assert rms(lost[-1]) < rms(lost[0]) / 10  # and it fades out
    assert len(decoder.conceal(2000)) == 2000
    # An empty payload is a lost packet, not FFmpeg's end of stream.
    assert len(decoder.decode(b"")) == 960
    after = np.concatenate([decoder.decode(site.next_packet()) for _ in range(10)])
    assert rms(after[5 * 960 :]) > 4000


def test_malformed_packet_raises_and_the_decoder_stays_usable() -> None:
    decoder = OpusDecoder()
    with pytest.raises(ValueError):
        decoder.decode(b"\xff")
    assert len(decoder.decode(ToneSite(440.0).next_packet())) == 960


# --- AudioMixer -------------------------------------------------------------------


@pytest.mark.parametrize("frame_samples", [960, 2880])
def test_mix_minus_and_common_mix(frame_samples: int) -> None:
    mixer = AudioMixer(frame_samples=frame_samples)
    ticks = 50 if frame_samples == 960 else 20
    warmup = WARMUP_FRAMES * 960 // frame_samples
    results = run_conference(mixer, ["A", "B"], ticks, frame_samples)
    assert all(r.speakers == ("A", "B") for r in results)
    assert all(set(r.per_speaker) == {"A", "B"} for r in results)

    common = decode_stream(r.common for r in results if r.common is not None)
    heard_by_a = decode_stream(r.per_speaker["A"] for r in results)
    heard_by_b = decode_stream(r.per_speaker["B"] for r in results)
    assert len(common) == ticks * frame_samples
    common, heard_by_a, heard_by_b = (
        x[warmup * frame_samples :] for x in (common, heard_by_a, heard_by_b)
    )
    a, b, c = TONES["A"], TONES["B"], TONES["C"]

    # Each speaker hears the other and not itself.
    assert level_db(heard_by_a, b) - level_db(heard_by_a, a) >= 20
    assert level_db(heard_by_b, a) - level_db(heard_by_b, b) >= 20
    # Everyone else hears both speakers, about equally; C (not selected) is not in any mix.
    assert abs(level_db(common, a) - level_db(common, b)) < 6
    for pcm, loudest in (
        (common, min(level_db(common, a), level_db(common, b))),
        (heard_by_a, level_db(heard_by_a, b)),
        (heard_by_b, level_db(heard_by_b, a)),
    ):
        assert loudest - level_db(pcm, c) >= 20

    stats = mixer.stats()
    assert stats["packets_decoded"] == 2 * ticks  # only the two speakers were decoded
    assert stats["packets_discarded"] == ticks  # C's packets, dropped unread
    # Two speakers: the common mix is the one encode; each speaker gets the other's own
    # packet of the frame.
    assert stats["encodes"] == ticks and stats["encodes_last_tick"] == 1
    assert stats["forwarded"] == 2 * ticks
    assert stats["packets_dropped"] == 0 and stats["packets_concealed"] == 0


def test_two_speakers_hear_each_others_own_packets() -> None:
    mixer = AudioMixer()
    sites = {code: ToneSite(freq) for code, freq in TONES.items()}
    for code in sites:
        mixer.add_site(code)
    for _ in range(10):
        sent = {code: site.next_packet() for code, site in sites.items()}
        for code, packet in sent.items():
            mixer.push(code, packet)
        result = mixer.mix(["A", "B"])
        assert result.per_speaker == {"A": sent["B"], "B": sent["A"]}
        assert result.common not in (sent["A"], sent["B"])  # a mix of both, encoded


def test_three_speakers_get_encoded_mix_minuses() -> None:
    mixer = AudioMixer()
    results = run_conference(mixer, ["A", "B", "C"], 30)
    assert mixer.stats()["encodes"] == 4 * 30 and mixer.stats()["forwarded"] == 0
    heard_by_a = decode_stream(r.per_speaker["A"] for r in results)[WARMUP_FRAMES * 960:]
    a, b, c = TONES["A"], TONES["B"], TONES["C"]
    assert min(level_db(heard_by_a, b), level_db(heard_by_a, c)) - level_db(heard_by_a, a) >= 20


def test_a_speaker_whose_frame_is_not_one_whole_packet_is_encoded_for_the_other() -> None:
    # B sends 10 ms packets (two a frame): A's mix-minus is B's frame, encoded anew.
    mixer = AudioMixer()
    a, b = ToneSite(TONES["A"]), ToneSite(TONES["B"], frame_samples=480)
    mixer.add_site("A")
    mixer.add_site("B")
    for _ in range(10):
        mixer.push("A", a.next_packet())
        mixer.push("B", b.next_packet())
        mixer.push("B", b.next_packet())
        result = mixer.mix(["A", "B"])
    assert mixer.stats()["forwarded"] == 10  # B hears A's packets; A gets an encode
    assert mixer.stats()["encodes_last_tick"] == 2
    assert len(result.per_speaker["A"]) > 0


def test_single_speaker_is_heard_by_all_and_hears_silence() -> None:
    mixer = AudioMixer()
    results = run_conference(mixer, ["C"], 30)
    assert all(r.per_speaker == {"C": mixer.silence_packet} for r in results)
    common = decode_stream(r.common for r in results if r.common is not None)[WARMUP_FRAMES * 960 :]
    assert level_db(common, TONES["C"]) - level_db(common, TONES["A"]) >= 20
    assert mixer.stats()["encodes_last_tick"] == 1


def test_nobody_speaking_gives_the_cached_silence_packet() -> None:
    mixer = AudioMixer()
    results = run_conference(mixer, [], 20)
    assert all(r.common is mixer.silence_packet and r.per_speaker == {} for r in results)
    assert mixer.stats()["encodes"] == 0 and mixer.stats()["packets_decoded"] == 0
    pcm = decode_stream([mixer.silence_packet] * 20)
    assert rms(pcm) < 10

    quiet = AudioMixer(send_silence=False)
    assert quiet.mix([]).common is None


def test_the_first_silent_tick_after_speech_flushes_the_common_encoder() -> None:
    mixer = AudioMixer()
    run_conference(mixer, ["A"], 5)
    first = mixer.mix([])
    assert first.common is not None and first.common is not mixer.silence_packet
    assert mixer.stats()["encodes_last_tick"] == 1
    assert mixer.mix([]).common is mixer.silence_packet
    assert mixer.stats()["encodes_last_tick"] == 0


def test_speakers_are_filtered_deduplicated_and_capped() -> None:
    mixer = AudioMixer(max_speakers=2)
    for code in "ABC":
        mixer.add_site(code)
    result = mixer.mix(["X", "B", "B", "A", "C"])
    assert result.speakers == ("B", "A")
    assert set(result.per_speaker) == {"A", "B"}
    assert result.packet_for("C") is result.common
    assert result.packet_for("A") == result.per_speaker["A"]


def test_queue_is_bounded_and_drops_are_counted() -> None:
    mixer = AudioMixer(max_queued=3)
    mixer.add_site("A")
    mixer.add_site("B")
    site = ToneSite(300.0)
    packets = [site.next_packet() for _ in range(5)]
    for packet in packets:
        mixer.push("A", packet)
    mixer.push("B", packets[0])
    mixer.push("nobody", packets[0])  # an unknown site is ignored
    stats = mixer.stats()
    assert stats["packets_pushed"] == 6
    assert stats["packets_dropped"] == 2
    assert stats["dropped_by_site"] == {"A": 2}

    mixer.mix(["A"])  # decodes A's oldest kept packet; B's goes unread
    stats = mixer.stats()
    assert stats["packets_decoded"] == 1 and stats["packets_discarded"] == 1
    mixer.mix(["A"])
    mixer.mix(["A"])
    assert mixer.stats()["packets_decoded"] == 3
    mixer.mix([])  # A no longer selected: nothing left to decode or discard
    assert mixer.stats()["packets_discarded"] == 1


def test_a_late_packet_is_concealed_only_for_a_speaker_already_in_the_mix() -> None:
    mixer = AudioMixer()
    mixer.add_site("A")
    mixer.add_site("B")
    site = ToneSite(300.0)
    for _ in range(5):
        mixer.push("A", site.next_packet())
        mixer.mix(["A"])
    mixer.mix(["A"])  # A's packet is late: continue its audio
    assert mixer.stats()["packets_concealed"] == 1
    mixer.mix(["A", "B"])  # B newly selected with nothing queued: silence, not stale audio
    assert mixer.stats()["packets_concealed"] == 2  # only A's
    mixer.mix(["B"])  # A deselected; still nothing from B
    mixer.mix(["A"])  # A back after a pause, its packet not there: silence too
    assert mixer.stats()["packets_concealed"] == 2


def test_malformed_packet_is_counted_and_concealed() -> None:
    mixer = AudioMixer()
    mixer.add_site("A")
    mixer.push("A", b"\xff")
    result = mixer.mix(["A"])
    assert result.common is not None
    assert mixer.stats()["decode_errors"] == 1


def test_short_packets_are_carried_into_a_longer_frame() -> None:
    # Sites sending 20 ms packets to a 60 ms mixer: three packets per tick.
    mixer = AudioMixer(frame_samples=2880, max_queued=9)
    mixer.add_site("A")
    site = ToneSite(TONES["A"], 960)
    results = []
    for _ in range(15):
        for _ in range(3):
            mixer.push("A", site.next_packet())
        results.append(mixer.mix(["A"]))
    assert mixer.stats()["packets_decoded"] == 45
    assert mixer.stats()["packets_concealed"] == 0
    common = decode_stream(r.common for r in results if r.common is not None)[4 * 2880 :]
    assert rms(common) > 4000
    assert level_db(common, TONES["A"]) - level_db(common, TONES["B"]) >= 20


def test_removed_site_leaves_the_mix() -> None:
    mixer = AudioMixer()
    run_conference(mixer, ["A", "B"], 3)
    mixer.remove_site("A")
    assert mixer.sites == frozenset({"B", "C"})
    mixer.push("A", b"\x00")  # ignored
    assert mixer.mix(["A", "B"]).speakers == ("B",)


def test_frame_size_must_be_an_opus_frame() -> None:
    with pytest.raises(ValueError):
        AudioMixer(frame_samples=1000)
