"""The bridge's cheaper REMB estimator (`media_tap.tune_bitrate_estimator`) estimates
exactly what aiortc's stock `RemoteBitrateEstimator` does, frame for frame.

The bridge swaps two parts of aiortc's estimator on each instance (its incoming
bitrate counter and its overuse estimator's minimum frame period): if aiortc
moves what these rely on, the pins below fail and media_tap.py must be read again."""

from __future__ import annotations

import inspect
import itertools
import random
from importlib.metadata import version
from typing import Any

from aiortc.rate import (
    MIN_FRAME_PERIOD_HISTORY_LENGTH,
    BandwidthUsage,
    OveruseEstimator,
    RemoteBitrateEstimator,
)

from bridge.media_tap import PINNED_AIORTC, tune_bitrate_estimator
from bridge.sliding_minimum import SlidingMinimum

SSRC = 0x1234_5678

# One frame as the bridge feeds it (`VideoIngest._feed_estimator`): its 24-bit
# abs-send-time, the arrival of its marker packet (ms), its bytes.
Frame = tuple[int, int, int]


def site_camera(seconds: int = 90, seed: int = 16) -> list[Frame]:
    """A site's 15 fps camera at ~30 kB/s as the bridge receives it: capture jitter,
    a dropped frame now and then, a keyframe every 4 s, network jitter, and from
    30 s to 36 s a bottleneck slower than the stream (the queue grows, arrival
    intervals stretch: overuse) that then drains. The abs-send-time wraps (64 s)."""
    rng = random.Random(seed)
    frames: list[Frame] = []
    start_s = 40.0  # abs-send-time wraps at 64 s: 24 s in
    link_free_ms = 0.0
    arrival = 0
    for n in range(seconds * 15):
        if rng.random() < 0.02:
            continue  # the encoder skipped a frame
        send_ms = n * 1000 / 15 + rng.uniform(0.0, 4.0)
        keyframe = n % 60 == 0
        size = rng.randint(7000, 9000) if keyframe else max(300, int(rng.gauss(1900, 400)))
        # The bottleneck: 100 kB/s, 24 kB/s (under the stream's rate) from 30 s to 36 s.
        capacity = 24.0 if 30_000 <= send_ms < 36_000 else 100.0  # bytes per ms
        link_free_ms = max(link_free_ms, send_ms) + size / capacity
        received = int(1_000_000 + link_free_ms + 20 + rng.uniform(0.0, 6.0))
        arrival = max(arrival, received)  # the receiver's clock does not go back
        abs_send_time = int((start_s + send_ms / 1000) * (1 << 18)) & 0xFFFFFF
        frames.append((abs_send_time, arrival, size))
    return frames


def feed(estimator: RemoteBitrateEstimator, frames: list[Frame]) -> list[tuple[Any, ...]]:
    """After each frame: the estimator's REMB (or None), hypothesis, offset, noise."""
    out: list[tuple[Any, ...]] = []
    for abs_send_time, arrival_ms, size in frames:
        remb = estimator.add(arrival_time_ms=arrival_ms, abs_send_time=abs_send_time,
                             payload_size=size, ssrc=SSRC)
        out.append((remb, estimator.detector.state(), estimator.estimator.offset(),
                    estimator.estimator.var_noise))
    return out


def test_the_tuned_estimator_sends_the_same_rembs_at_the_same_frames() -> None:
    frames = site_camera()
    stock = RemoteBitrateEstimator()
    tuned = RemoteBitrateEstimator()
    tune_bitrate_estimator(tuned)
    expected, got = feed(stock, frames), feed(tuned, frames)
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, (index, frames[index])

    # The sequence exercised what matters: estimates from 3 s on, the overuse
    # seen and answered by a lower estimate, then recovery.
    rembs = [(i, r[0][0]) for i, r in enumerate(expected) if r[0] is not None]
    assert len(rembs) > 100
    states = {r[1] for r in expected}
    assert BandwidthUsage.OVERUSING in states and BandwidthUsage.NORMAL in states
    assert any(later < earlier for (_, earlier), (_, later) in itertools.pairwise(rembs))
    assert all(r[0][1] == [SSRC] for r in expected if r[0] is not None)


def test_the_same_minimum_as_aiortcs_frame_period_history() -> None:
    rng = random.Random(5)
    for length in (MIN_FRAME_PERIOD_HISTORY_LENGTH, 1, 3):
        stock = OveruseEstimator()
        ours = SlidingMinimum(length)
        # aiortc's method, with its history length as a parameter.
        history: list[float] = []
        for step in range(3000):
            # Mostly ~66 ms, repeats, bursts and long gaps, long runs of rising values.
            if step % 400 < 100:
                value = float(step % 400)
            else:
                value = rng.choice([66.66, 66.66, 33.3, 133.3, rng.uniform(0.0, 200.0)])
            if length == MIN_FRAME_PERIOD_HISTORY_LENGTH:
                want = stock.update_min_frame_period(value)
            else:
                if len(history) >= length:
                    history.pop(0)
                want = min([value, *history])
                history.append(value)
            assert ours.update(value) == want, (length, step)


def test_what_the_tuning_replaces_is_where_aiortc_1_16_has_it() -> None:
    assert version("aiortc") == PINNED_AIORTC
    # The estimator's parts, created in its constructor and used through these names.
    init = inspect.getsource(RemoteBitrateEstimator.__init__)
    assert "self.estimator = OveruseEstimator()" in init
    assert "self.incoming_bitrate = RateCounter(1000, 8000)" in init
    # The overuse estimator takes the minimum through its own method, once per update,
    # looked up on the instance (so an instance attribute replaces it).
    update = inspect.getsource(OveruseEstimator.update)
    assert "min_frame_period = self.update_min_frame_period(timestamp_delta_ms)" in update
    assert update.count("update_min_frame_period") == 1
    assert list(inspect.signature(OveruseEstimator.update_min_frame_period).parameters) == [
        "self", "ts_delta"]
    # ... and it is the minimum of the last 60 values, the new one included.
    assert MIN_FRAME_PERIOD_HISTORY_LENGTH == 60
    period = inspect.getsource(OveruseEstimator.update_min_frame_period)
    for line in ("min_frame_period = ts_delta",
                 "if len(self.ts_delta_hist) >= MIN_FRAME_PERIOD_HISTORY_LENGTH:",
                 "self.ts_delta_hist.pop(0)",
                 "for old_ts_delta in self.ts_delta_hist:",
                 "min_frame_period = min(old_ts_delta, min_frame_period)",
                 "self.ts_delta_hist.append(ts_delta)",
                 "return min_frame_period"):
        assert line in period, line
    # No other reader of the history the tuned instance leaves empty.
    source = inspect.getsource(OveruseEstimator)
    assert source.count("ts_delta_hist") == period.count("ts_delta_hist") + 1  # + __init__
    tuned = RemoteBitrateEstimator()
    tune_bitrate_estimator(tuned)
    assert isinstance(getattr(tuned.estimator.update_min_frame_period, "__self__", None),
                      SlidingMinimum)
