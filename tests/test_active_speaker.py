"""Active-speaker detection: audio is simulated frame by frame on a millisecond
counter, never by sleeping. Levels are RFC 6464: 0 loudest, 127 silence (-dBov). The
last test: the audio engine lets time pass for the detector on every tick."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping

import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from bridge.active_speaker import FRAME_MS, ActiveSpeakerDetector
from bridge.audio_engine import AudioEngine
from bridge.opus_codec import OpusEncoder
from tests.test_sip_audio import Packets
from vcbridge.core.media_counters import MixCounters

A, B, C, D = "TP-THANH-HOA", "TP-SAM-SON", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT"
SILENT = 127
TALK = 30  # -30 dBov: an ordinary speaker
LOUD = 20  # -20 dBov: 10 dB louder

# A site's audio over time: the level of its packet at t, or None for no packet.
Voice = Callable[[int], int | None]


def steady(level: int) -> Voice:
    return lambda t: level


def between(start: int, end: int, level: int, outside: int | None = SILENT) -> Voice:
    """`level` during [start, end), `outside` (silence by default) otherwise."""
    return lambda t: level if start <= t < end else outside


def run(
    det: ActiveSpeakerDetector, voices: Mapping[str, Voice], start: int, end: int
) -> list[tuple[int, str | None]]:
    """Feed one packet per site per frame in [start, end); current() after each frame."""
    history = []
    for t in range(start, end, FRAME_MS):
        for code, voice in voices.items():
            level = voice(t)
            if level is not None:
                det.update(code, level, t)
        history.append((t, det.current()))
    return history


def changes(history: list[tuple[int, str | None]]) -> list[tuple[int, str | None]]:
    """The frames where current() changed, with the new value."""
    out = []
    previous: str | None = None
    for t, current in history:
        if current != previous:
            out.append((t, current))
            previous = current
    return out


def with_speaker(code: str = A, level: int = TALK) -> tuple[ActiveSpeakerDetector, int]:
    """A detector where `code` has been speaking for 2 s and is current; the time after."""
    det = ActiveSpeakerDetector()
    run(det, {code: steady(level)}, 0, 2000)
    assert det.current() == code
    return det, 2000


# --- parameters -------------------------------------------------------------------------


def test_defaults() -> None:
    det = ActiveSpeakerDetector()
    assert det.speech_threshold_dbov == -50.0
    assert det.min_speech_ms == 800
    assert det.switch_margin_db == 6.0
    assert det.silence_release_ms == 1500
    assert 0 < det.smoothing <= 1
    assert det.current() is None
    assert det.loudest(3) == []
    assert det.levels() == {}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"speech_threshold_dbov": -127.0},
        {"speech_threshold_dbov": 1.0},
        {"smoothing": 0.0},
        {"smoothing": 1.5},
        {"min_speech_ms": -1},
        {"silence_release_ms": -1},
        {"switch_margin_db": -1.0},
    ],
)
def test_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ActiveSpeakerDetector(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("level", [-1, 128])
def test_levels_are_rfc_6464(level: int) -> None:
    with pytest.raises(ValueError, match=r"0\.\.127"):
        ActiveSpeakerDetector().update(A, level, 0)


# --- taking the main video ----------------------------------------------------------------


def test_first_speaker_after_min_speech() -> None:
    det = ActiveSpeakerDetector()
    history = run(det, {A: steady(TALK), B: steady(SILENT)}, 0, 1500)
    # Speech from the first packet (t=0), so current exactly 800 ms later.
    assert changes(history) == [(800, A)]


def test_a_cough_in_a_silent_room_switches_nothing() -> None:
    det = ActiveSpeakerDetector()
    # 200 ms at full scale, the loudest a cough can be, then silence.
    history = run(det, {B: between(0, 200, 0)}, 0, 4000)
    assert changes(history) == []
    assert det.loudest(1) == []


def test_a_cough_does_not_take_the_video_from_the_speaker() -> None:
    det, t = with_speaker(A)
    history = run(det, {A: steady(TALK), B: between(t + 500, t + 700, 0)}, t, t + 3000)
    assert changes(history) == [(t, A)]


def test_a_burst_just_under_min_speech_switches_nothing() -> None:
    # With no smoothing, a 780 ms burst is exactly 780 ms of lead: not enough.
    det = ActiveSpeakerDetector(smoothing=1.0)
    assert changes(run(det, {B: between(0, 780, LOUD)}, 0, 3000)) == []
    # 41 packets, the last 800 ms after the first: enough.
    assert changes(run(det, {B: between(3000, 3820, LOUD)}, 3000, 5000))[0] == (3800, B)


def test_sustained_louder_speech_takes_over_after_min_speech() -> None:
    det, t = with_speaker(A)
    # B speaks 10 dB louder from t on: its lead counts from its first packet.
    history = run(det, {A: steady(TALK), B: steady(LOUD)}, t, t + 2000)
    assert changes(history) == [(t, A), (t + 800, B)]
    # A, still talking but now the quieter one, does not get it back.
    assert det.current() == B


def test_a_lead_under_the_margin_never_switches() -> None:
    det, t = with_speaker(A)
    # 3 dB louder, for a minute: the current speaker keeps the main video.
    history = run(det, {A: steady(TALK), B: steady(TALK - 3)}, t, t + 60_000)
    assert {current for _, current in history} == {A}
    # Until A stops: then B's 3 dB become a large lead.
    history = run(det, {A: steady(SILENT), B: steady(TALK - 3)}, t + 60_000, t + 63_000)
    assert changes(history) == [(t + 60_000, A), (t + 60_000 + 820, B)]


def test_a_new_speaker_takes_over_during_the_current_speakers_pause() -> None:
    det, t = with_speaker(A)
    # A stops; B answers 200 ms later, talking normally with 100 ms gaps between words.
    b_start = t + 200

    def b_words(now: int) -> int:
        return TALK if now >= b_start and (now - b_start) % 400 < 300 else SILENT

    history = run(det, {A: steady(SILENT), B: b_words}, t, t + 3000)
    # Long before A would be released for silence (1.5 s), B has held its lead 800 ms.
    assert changes(history) == [(t, A), (b_start + 800, B)]


def test_the_speaker_keeps_the_video_through_pauses() -> None:
    det, t = with_speaker(A)
    # A pauses 1 s (under the 1.5 s release), while B says something short (500 ms).
    voices = {
        A: lambda now: SILENT if t + 1000 <= now < t + 2000 else TALK,
        B: between(t + 1200, t + 1700, TALK),
    }
    history = run(det, voices, t, t + 5000)
    assert {current for _, current in history} == {A}


def test_a_pause_breaks_a_challengers_lead() -> None:
    det = ActiveSpeakerDetector()
    # B talks 500 ms, stops 500 ms, talks again: its lead restarts at 1000.
    voices = {B: lambda now: TALK if now < 500 or now >= 1000 else SILENT}
    assert changes(run(det, voices, 0, 3000)) == [(1800, B)]


def test_a_gap_in_the_packets_breaks_a_challengers_lead() -> None:
    det = ActiveSpeakerDetector()
    # Discontinuous transmission: B sends nothing for 400 ms, which counts as silence.
    voices = {B: lambda now: TALK if now < 600 or now >= 1000 else None}
    assert changes(run(det, voices, 0, 3000)) == [(1800, B)]


def test_late_packets_are_jitter_not_silence() -> None:
    det = ActiveSpeakerDetector()
    # Packets in pairs every 40 ms (bursty network): each up to a frame late.
    for t in range(0, 2000, 40):
        det.update(A, TALK, t)
        det.update(A, TALK, t + 1)
    assert det.current() == A
    assert det.levels()[A] == pytest.approx(-30.0)


def test_two_challengers_the_first_to_hold_its_lead_wins() -> None:
    det, t = with_speaker(A)
    voices = {A: steady(SILENT), B: between(t + 100, t + 5000, TALK), C: steady(LOUD)}
    history = run(det, voices, t, t + 3000)
    # C leads from t; B (quieter, later) never gets its 800 ms against C.
    assert changes(history) == [(t, A), (t + 800, C)]


def test_taking_the_video_back_needs_the_margin_again() -> None:
    det, t = with_speaker(A)
    run(det, {A: steady(SILENT), B: steady(TALK)}, t, t + 2000)
    assert det.current() == B
    # A talks as loud as B: no lead, no switch.
    assert {c for _, c in run(det, {A: steady(TALK), B: steady(TALK)}, t + 2000, t + 6000)} == {B}
    # A raises its voice by 10 dB: it takes the video back after 800 ms.
    history = run(det, {A: steady(LOUD), B: steady(TALK)}, t + 6000, t + 8000)
    assert changes(history) == [(t + 6000, B), (t + 6800, A)]


# --- release ----------------------------------------------------------------------------


def test_silence_releases_the_speaker_after_silence_release_ms() -> None:
    det, t = with_speaker(A)
    history = run(det, {A: steady(SILENT)}, t, t + 4000)
    # The smoothed level falls under -50 dBov a few frames after the last word...
    levels = []
    det2, _ = with_speaker(A)
    for now in range(t, t + 400, FRAME_MS):
        det2.update(A, SILENT, now)
        levels.append((now, det2.levels()[A]))
    silent_at = next(now for now, level in levels if level <= -50.0)
    assert t < silent_at < t + 300
    # ... and A stays current exactly 1.5 s from then, then nobody is.
    assert changes(history) == [(t, A), (silent_at + 1500, None)]


def test_a_stream_that_stops_is_released_on_ticks() -> None:
    det, t = with_speaker(A)
    last_packet = t - FRAME_MS
    # No more packets from anyone: the bridge ticks.
    det.tick(last_packet + 1000)
    assert det.current() == A
    # Steady -30 dBov falls under -50 after 10 silent frames; the first missed
    # frame is jitter: silent from last_packet + 220, released 1.5 s later.
    det.tick(last_packet + 220 + 1499)
    assert det.current() == A
    det.tick(last_packet + 220 + 1500)
    assert det.current() is None
    assert det.levels()[A] < -50.0


def test_a_late_packet_after_a_long_gap_releases_first() -> None:
    det, t = with_speaker(A)
    # Nothing at all for 3 s (no ticks either), then A speaks again.
    det.update(A, TALK, t + 3000)
    # It had been silent for over 1.5 s: released, and has to earn the video again.
    assert det.current() is None
    run(det, {A: steady(TALK)}, t + 3020, t + 3780)
    assert det.current() is None
    det.update(A, TALK, t + 3800)
    assert det.current() == A


def test_forget() -> None:
    det, t = with_speaker(A)
    run(det, {A: steady(TALK), B: steady(TALK)}, t, t + 100)
    det.forget(A)
    assert det.current() is None
    assert set(det.levels()) == {B}
    det.forget(A)  # twice, or a site never seen: nothing to do
    det.forget("NOBODY")
    assert det.loudest(5) == [B]


# --- the mixer's choice and the UI's levels -------------------------------------------------


def test_loudest_ordering_and_exclusion() -> None:
    det = ActiveSpeakerDetector()
    voices = {A: steady(40), B: steady(20), C: steady(30), D: steady(SILENT), "E": steady(45)}
    run(det, voices, 0, 500)
    assert det.loudest(10) == [B, C, A, "E"]  # D is not speaking
    assert det.loudest(2) == [B, C]
    assert det.loudest(2, exclude=[B]) == [C, A]
    assert det.loudest(3, exclude={B, C, "NOBODY"}) == [A, "E"]
    assert det.loudest(0) == []
    with pytest.raises(ValueError):
        det.loudest(-1)


def test_loudest_within_a_range_of_the_loudest() -> None:
    # Two talkers and a room's murmur 25 dB under the louder: the mixer leaves it out.
    det = ActiveSpeakerDetector()
    run(det, {A: steady(LOUD), B: steady(TALK), C: steady(45)}, 0, 500)
    assert det.loudest(3) == [A, B, C]
    assert det.loudest(3, within_db=20) == [A, B]
    assert det.loudest(3, within_db=30) == [A, B, C]
    assert det.loudest(3, within_db=5) == [A]


def test_loudest_ties_in_code_order() -> None:
    det = ActiveSpeakerDetector()
    run(det, {C: steady(TALK), A: steady(TALK), B: steady(TALK)}, 0, 200)
    assert det.loudest(3) == sorted([A, B, C])


def test_loudest_drops_sites_that_went_quiet_or_stopped_sending() -> None:
    det = ActiveSpeakerDetector()
    run(det, {A: steady(TALK), B: steady(TALK), C: steady(LOUD)}, 0, 500)
    assert det.loudest(3) == [C, B, A]  # A and B tie: in code order
    # A goes silent, C stops sending altogether (its last level decays with time).
    run(det, {A: steady(SILENT), B: steady(TALK)}, 500, 1500)
    assert det.loudest(3) == [B]


def test_levels_are_smoothed_dbov() -> None:
    det = ActiveSpeakerDetector(smoothing=0.4)
    det.update(A, TALK, 0)
    # The first packet weighs 0.4 of its power against silence: -30 + 10 log10(0.4).
    assert det.levels()[A] == pytest.approx(-30.0 + 10 * math.log10(0.4))
    run(det, {A: steady(TALK), B: steady(SILENT)}, 20, 1000)
    levels = det.levels()
    assert levels[A] == pytest.approx(-30.0, abs=1e-6)
    assert levels[B] == -127.0
    # One silent frame: 60 % of the power stays.
    det.update(A, SILENT, 1000)
    assert det.levels()[A] == pytest.approx(-30.0 + 10 * math.log10(0.6), abs=1e-6)


def test_time_never_runs_backwards() -> None:
    det = ActiveSpeakerDetector()
    run(det, {A: steady(TALK)}, 0, 1000)
    # A sample stamped earlier (another task's clock) counts as now.
    det.update(B, LOUD, 500)
    assert det.levels()[B] > det.levels()[A]
    run(det, {A: steady(TALK), B: steady(LOUD)}, 1000, 1600)
    assert det.current() == A
    det.update(B, LOUD, 1760)
    assert det.current() == A
    det.update(B, LOUD, 1780)  # 800 ms after B's first packet, taken as at 980
    assert det.current() == B


def test_without_smoothing_and_without_hysteresis() -> None:
    det = ActiveSpeakerDetector(
        smoothing=1.0, min_speech_ms=0, switch_margin_db=0.0, silence_release_ms=0
    )
    det.update(A, TALK, 0)
    assert det.current() == A
    det.update(B, TALK, 20)
    assert det.current() == B  # as loud is loud enough with no margin
    det.update(B, SILENT, 40)
    assert det.current() is None
    det.update(A, TALK, 60)
    det.tick(99)
    assert det.current() == A
    det.tick(100)  # first frame missed is jitter, the second is silence
    assert det.current() is None


class SteppedClock:
    """The engine's loop clock, moved by the test (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now


async def test_a_speaker_whose_stream_stops_is_released_while_the_engine_ticks() -> None:
    changes: list[str | None] = []
    engine = AudioEngine(on_speaker_change=changes.append)
    clock = SteppedClock()
    engine._loop = clock  # type: ignore[assignment]
    engine.add_site("TINH", Packets())
    engine.add_site("HUYEN", Packets())
    engine.audible = frozenset({"TINH", "HUYEN"})
    encoder = OpusEncoder()
    speech = (np.sin(2 * np.pi * 440.0 * np.arange(50 * 960) / 48000) * 9000).astype(np.int16)
    for index in range(50):  # a second of speech
        packet = RtpPacket(payload_type=96, sequence_number=index,
                           payload=encoder.encode(speech[index * 960:(index + 1) * 960]))
        packet.extensions.audio_level = (True, 10)
        engine.on_packet("TINH", packet)
        engine._tick()
        clock.now += 0.02
    assert changes == ["TINH"]
    for _ in range(150):  # then three seconds without a packet from anyone
        engine._tick()
        clock.now += 0.02
    assert changes == ["TINH", None] and engine.speaker is None


async def test_the_engine_mixes_only_sites_within_its_range_of_the_loudest() -> None:
    engine = AudioEngine()
    clock = SteppedClock()
    engine._loop = clock  # type: ignore[assignment]
    levels = {"TINH": 20, "SO": 30, "HUYEN": 45}  # two talkers, a murmur
    for code in levels:
        engine.add_site(code, Packets())
    engine.audible = frozenset(levels)
    encoders = {code: OpusEncoder() for code in levels}
    silence = np.zeros(960, dtype=np.int16)
    for index in range(50):
        for code, level in levels.items():
            packet = RtpPacket(payload_type=96, sequence_number=index,
                               payload=encoders[code].encode(silence))
            packet.extensions.audio_level = (True, level)
            engine.on_packet(code, packet)
        engine._tick()
        clock.now += 0.02
    # The murmur is 25 dB under the loudest: two speakers mixed, each hearing the
    # other's own packet, the common mix the one encode of the tick.
    assert engine.mixer.stats()["encodes_last_tick"] == 1
    engine.mix_range_db = 30.0
    for code, level in levels.items():
        packet = RtpPacket(payload_type=96, sequence_number=50,
                           payload=encoders[code].encode(silence))
        packet.extensions.audio_level = (True, level)
        engine.on_packet(code, packet)
    engine._tick()
    assert engine.mixer.stats()["encodes_last_tick"] == 4  # three speakers
    # As the metrics count them: that one frame of three speakers, the others of two at
    # most, and the two-speaker frames' mix-minus packets forwarded, not encoded.
    counters = engine.mix_counters()
    assert counters.frames_by_speakers[3] == 1 and sum(counters.frames_by_speakers) == 51
    assert counters.forwarded >= 2 * counters.frames_by_speakers[2] > 0


async def test_the_engine_counts_what_it_mixes_and_the_frames_it_skips() -> None:
    # What the metrics export (vcbridge_audio_mix_*): an engine with nobody in it mixes
    # frames of nobody speaking; a process that falls behind skips frames rather than
    # sending a burst, and says how many.
    engine = AudioEngine()
    engine.start()
    try:
        await asyncio.sleep(0.1)
        time.sleep(0.3)  # noqa: ASYNC251 - on purpose: the event loop blocked for 15 frames
        await asyncio.sleep(0.1)
        counters = engine.mix_counters()
    finally:
        await engine.stop()
    assert counters.frames_by_speakers[0] == engine.ticks > 0
    assert sum(counters.frames_by_speakers) == engine.ticks
    assert counters.skipped_frames >= 10 and engine.late_ticks >= 1
    assert counters.encodes == 0  # silence is a cached packet
    # Counters of several rooms add up, closed rooms' with the open ones'.
    total = counters.plus(MixCounters(frames_by_speakers=(1, 2, 3, 4), encodes=5))
    assert total.frames_by_speakers == (counters.frames_by_speakers[0] + 1, 2, 3, 4)
    assert total.encodes == 5 and total.skipped_frames == counters.skipped_frames
