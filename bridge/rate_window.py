"""The incoming bitrate over a sliding window, at a cost per packet rather than per millisecond.

aiortc's bandwidth estimator (`aiortc.rate.RemoteBitrateEstimator`, behind the
REMB the bridge sends each site) measures the incoming bitrate with a
`RateCounter` of one bucket per millisecond, and clears the buckets one by one
as time passes: a thousand Python loop steps a second per site, whatever
arrives, which was most of the estimator's share of the bridge's CPU
(docs/performance.md). `RateWindow` gives the same figures from a queue of the
amounts added: work per added amount, none per idle millisecond.

Same interface and results as `RateCounter(window_size, scale)`: `add(value,
now_ms)`, `rate(now_ms)` (None before anything was added, or with nothing in
the window, or a window of one millisecond), `reset()`
(tests/test_rate_window.py compares the two on the same inputs)."""

from __future__ import annotations

from collections import deque


class RateWindow:
    """Sum of the amounts added over the last `window_size` ms, as a rate (`scale` per ms)."""

    def __init__(self, window_size: int, scale: int = 8000) -> None:
        self._window_size = window_size
        self._scale = scale
        self._entries: deque[tuple[int, int]] = deque()
        self._total = 0
        self._origin_ms: int | None = None

    def add(self, value: int, now_ms: int) -> None:
        """Count `value` at `now_ms`."""
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        self._entries.append((now_ms, value))
        self._total += value

    def rate(self, now_ms: int) -> int | None:
        """The rate over the window ending at `now_ms`, or None (see the module)."""
        if self._origin_ms is None:
            return None
        self._erase_old(now_ms)
        active_window_size = now_ms - self._origin_ms + 1
        if self._entries and active_window_size > 1:
            return round(self._scale * self._total / active_window_size)
        return None

    def reset(self) -> None:
        """Forget everything, as a new counter."""
        self._entries.clear()
        self._total = 0
        self._origin_ms = None

    def _erase_old(self, now_ms: int) -> None:
        assert self._origin_ms is not None
        new_origin_ms = now_ms - self._window_size + 1
        if self._origin_ms < new_origin_ms:
            self._origin_ms = new_origin_ms
        entries = self._entries
        while entries and entries[0][0] < self._origin_ms:
            self._total -= entries.popleft()[1]
