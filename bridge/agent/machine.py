"""The agent machine's CPU utilisation between two heartbeats.

Not the load average: that counts processes waiting (for the disk too), lags
by a minute, and divided by the cores reads "100 %" on any busy machine. The
figure is the share of the machine's CPU time (all cores) that was busy since
the previous reading, from the kernel's counters (psutil: `/proc/stat` on
Linux, the same counters on Windows)."""

from __future__ import annotations

import psutil


def _busy_and_total() -> tuple[float, float]:
    times = psutil.cpu_times()
    total = sum(times)
    # Linux counts guest time inside user time too: do not count it twice.
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


class CpuMeter:
    """`percent()`: the machine's CPU utilisation (0-100, all cores) since the previous
    call; the first call covers the time since the meter was made."""

    def __init__(self) -> None:
        self._last = _busy_and_total()

    def percent(self) -> float | None:
        """Busy share of CPU time since the last call, in percent (None: no time passed)."""
        busy, total = _busy_and_total()
        last_busy, last_total = self._last
        self._last = (busy, total)
        elapsed = total - last_total
        if elapsed <= 0:
            return None
        return round(min(max((busy - last_busy) / elapsed, 0.0), 1.0) * 100, 1)
