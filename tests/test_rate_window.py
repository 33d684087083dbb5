"""`RateWindow` gives the figures of aiortc's `RateCounter`, which it replaces in the
bandwidth estimator behind the bridge's REMB (`bridge/media_tap.py`)."""

from __future__ import annotations

import inspect
import random

from aiortc.rate import RateCounter, RemoteBitrateEstimator

from bridge.rate_window import RateWindow


def test_the_estimator_still_uses_its_counter_as_expected() -> None:
    init = inspect.getsource(RemoteBitrateEstimator.__init__)
    assert "self.incoming_bitrate = RateCounter(1000, 8000)" in init
    add = inspect.getsource(RemoteBitrateEstimator.add)
    # Only these three calls, so a stand-in with them is enough.
    calls = {c for c in ("rate(", "add(", "reset(") if f"self.incoming_bitrate.{c}" in add}
    assert calls == {"rate(", "add(", "reset("}
    assert add.count("self.incoming_bitrate.") == 4


def test_the_same_rates_as_aiortcs_counter() -> None:
    rng = random.Random(7)
    for window in (1000, 50):
        ours, theirs = RateWindow(window, 8000), RateCounter(window, 8000)
        now = 1_000_000
        assert ours.rate(now) is theirs.rate(now) is None
        for step in range(5000):
            # Bursts, pauses longer than the window, resets now and then.
            now += rng.choice([0, 0, 1, 3, 20, 67]) if step % 700 else window * 3
            if step % 1500 == 1499:
                ours.reset()
                theirs.reset()
            if rng.random() < 0.8:
                size = rng.randint(50, 1300)
                ours.add(size, now)
                theirs.add(size, now)
            assert ours.rate(now) == theirs.rate(now), (window, step)
