"""The minimum of the last few values, at a cost per value that does not grow with the window.

aiortc's bandwidth estimator (`aiortc.rate.OveruseEstimator`, behind the REMB
the bridge sends each site) takes, for every frame, the smallest of the last
60 intervals between frames' send times (`update_min_frame_period`), by
scanning a list of them: 60 Python loop steps per frame per site, about 1.4 %
of the bridge's samples at 31 sites (docs/performance.md). `SlidingMinimum`
gives the same minimum from a monotonic queue: each value goes in and out of
it at most once (measured per value: 7.6 µs for aiortc's scan, 0.27 µs here).

Same contract as `OveruseEstimator.update_min_frame_period`: `update(value)`
records `value` and returns the smallest of it and the `length - 1` values
recorded before it (all of them while fewer were recorded)
(tests/test_remb_estimator.py compares the two on the same inputs)."""

from __future__ import annotations

from collections import deque


class SlidingMinimum:
    """The smallest of the last `length` values recorded, the newest included."""

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError("length must be at least 1")
        self._length = length
        self._count = 0
        # (index, value), values strictly increasing from the front: the front is the
        # minimum, and a value behind a smaller newer one can never be the minimum again.
        self._queue: deque[tuple[int, float]] = deque()

    def update(self, value: float) -> float:
        """Record `value`; the minimum of the window that ends with it."""
        queue = self._queue
        while queue and queue[-1][1] >= value:
            queue.pop()
        index = self._count
        self._count = index + 1
        queue.append((index, value))
        if queue[0][0] <= index - self._length:
            queue.popleft()  # one value leaves the window per update: one pop is enough
        return queue[0][1]
