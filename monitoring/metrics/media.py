"""Media quality as the bridge sees it: cumulative media counters (from the bridge,
through a `MediaSource` the composition root builds) sampled into rates and ratios on
the quality gauges (`side="bridge"`), and handed to listeners (the health model)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping

from monitoring.metrics.families import Metrics, Quality
from vcbridge.core.media_counters import MediaCounters, MediaSource

log = logging.getLogger(__name__)

NAN = math.nan


def _delta(new: int | None, old: int | None) -> int | None:
    if new is None or old is None or new < old:
        return None
    return new - old


def quality_between(
    previous: MediaCounters | None, current: MediaCounters, seconds: float
) -> Quality:
    """The quality over the window from `previous` to `current` (`seconds` long).

    Without a previous sample (or after a counter restart) the rates are left
    alone; a window with no packets has no loss ratio (NaN)."""
    loss: float | None = None
    receive: float | None = None
    send: float | None = None
    fps: float | None = None
    if previous is not None and seconds > 0:
        received = _delta(current.packets_received, previous.packets_received)
        lost = _delta(current.packets_lost, previous.packets_lost)
        if received is not None and lost is not None:
            loss = lost / (received + lost) if received + lost else NAN
        bytes_in = _delta(current.bytes_received, previous.bytes_received)
        bytes_out = _delta(current.bytes_sent, previous.bytes_sent)
        frames = _delta(current.frames_received, previous.frames_received)
        receive = None if bytes_in is None else bytes_in / seconds
        send = None if bytes_out is None else bytes_out / seconds
        fps = None if frames is None else frames / seconds
    return Quality(
        round_trip_time_seconds=current.round_trip_time_seconds,
        jitter_seconds=current.jitter_seconds,
        packet_loss_ratio=loss,
        receive_bytes_per_second=receive,
        send_bytes_per_second=send,
        frames_per_second=fps,
    )


# -- media -----------------------------------------------------------------------------


class MediaSampler:
    """Samples a `MediaSource` every `interval` seconds into the quality gauges."""

    def __init__(self, metrics: Metrics, source: MediaSource, *, interval: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._source = source
        self.interval = interval
        self._monotonic = monotonic
        self._previous: dict[str, tuple[float, MediaCounters]] = {}
        # Called after each sample with endpoint code -> its quality over the window
        # (None: it left its room since the last sample).
        self.listeners: list[Callable[[Mapping[str, Quality | None]], None]] = []

    async def run(self) -> None:
        """Sample every `interval` seconds until cancelled (failures are logged)."""
        while True:
            try:
                self.sample()
            except Exception:
                log.exception("metrics: sampling media counters failed")
            await asyncio.sleep(self.interval)

    def sample(self) -> None:
        """One sample: set the quality of every connected endpoint, clear the others."""
        now = self._monotonic()
        current = dict(self._source())
        window: dict[str, Quality | None] = {}
        for code in self._previous.keys() - current.keys():
            self._metrics.clear_quality(code, "bridge")
            window[code] = None
        for code, counters in current.items():
            before = self._previous.get(code)
            previous, seconds = (None, 0.0) if before is None else (before[1], now - before[0])
            quality = quality_between(previous, counters, seconds)
            self._metrics.set_quality(code, quality, "bridge")
            window[code] = quality
        self._previous = {code: (now, counters) for code, counters in current.items()}
        for listener in self.listeners:
            try:
                listener(window)
            except Exception:
                log.exception("metrics: a media listener failed")
