"""One site's media as a bridge process sees it: the type the bridge reports and the
metrics read.

Two features share it (the bridge fills it, monitoring turns it into rates and
ratios) and features never import each other, so it lives in the core; the
composition root hands the bridge's report to the metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class MediaCounters:
    """One endpoint's media counters and latest quality figures.

    Counters are cumulative over the site's current connection (a decrease
    means they restarted); None: not measured by the source."""

    packets_received: int | None = None  # audio packets from the site
    packets_lost: int | None = None  # audio packets from the site that never came
    bytes_received: int | None = None  # audio payload and video frame bytes from the site
    bytes_sent: int | None = None  # what the bridge's senders sent the site (RTP payload)
    frames_received: int | None = None  # camera frames from the site
    round_trip_time_seconds: float | None = None  # latest value
    jitter_seconds: float | None = None  # latest value: the site's jitter on what it receives


# Endpoint code -> its media counters; only endpoints connected to a room of this process.
MediaSource = Callable[[], Mapping[str, MediaCounters]]
