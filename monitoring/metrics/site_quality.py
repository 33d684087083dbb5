"""Media quality as the site sees it: the call figures of each endpoint's heartbeats on
the quality gauges (`side="site"`), cleared when the endpoint stops reporting them here.

A heartbeat lands on one process (the one holding the endpoint's event stream),
so only that process exports the site's figures; the others export NaN, which
`max by (endpoint)` and `min by (endpoint)` pass over. A heartbeat is a whole
statement of the interval: a figure it leaves out is not measured (NaN), and a
heartbeat without a call clears them all."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from monitoring.metrics.families import Metrics

log = logging.getLogger(__name__)

SIDE = "site"


class SiteQuality:
    """Sets the site-side quality gauges from heartbeats; `run()` expires silent ones."""

    def __init__(self, metrics: Metrics, *, max_age: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self.max_age = max_age
        self._monotonic = monotonic
        self._reported: dict[str, float] = {}  # endpoint code -> when its figures were set

    def report(self, code: str, row: tuple[float, ...] | None) -> None:
        """A heartbeat of `code`: its call figures in `QUALITY_FIELDS`' order and units,
        NaN where not measured (None: not in a call)."""
        if row is None:
            if self._reported.pop(code, None) is not None:
                self._metrics.clear_quality(code, SIDE)
            return
        self._metrics.set_quality_row(code, SIDE, row)
        self._reported[code] = self._monotonic()

    def expire(self) -> None:
        """Clear the figures of endpoints that have not reported here for `max_age`."""
        oldest = self._monotonic() - self.max_age
        for code in [c for c, at in self._reported.items() if at < oldest]:
            del self._reported[code]
            self._metrics.clear_quality(code, SIDE)

    async def run(self) -> None:
        """Expire silent endpoints every few seconds until cancelled."""
        while True:
            await asyncio.sleep(max(self.max_age / 4, 0.1))
            try:
                self.expire()
            except Exception:
                log.exception("metrics: expiring site quality failed")
