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
import math
import time
from collections.abc import Callable
from dataclasses import fields

from monitoring.metrics.families import Metrics, Quality

log = logging.getLogger(__name__)

SIDE = "site"


def _stated(quality: Quality) -> Quality:
    """`quality` with every figure it does not give as NaN (not measured)."""
    return Quality(**{f.name: math.nan if getattr(quality, f.name) is None
                      else getattr(quality, f.name) for f in fields(Quality)})


class SiteQuality:
    """Sets the site-side quality gauges from heartbeats; `run()` expires silent ones."""

    def __init__(self, metrics: Metrics, *, max_age: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self.max_age = max_age
        self._monotonic = monotonic
        self._reported: dict[str, float] = {}  # endpoint code -> when its figures were set

    def report(self, code: str, quality: Quality | None) -> None:
        """A heartbeat of `code`: its call figures (None: not in a call)."""
        if quality is None:
            if self._reported.pop(code, None) is not None:
                self._metrics.clear_quality(code, SIDE)
            return
        self._metrics.set_quality(code, _stated(quality), SIDE)
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
