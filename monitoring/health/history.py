"""One endpoint's recent history, shaped for charts: its per-minute figures as dense
series (one value per minute of the window, null where nothing was measured) and the
changes of its health within the window, with the state it was in when the window began.

The figures are read from whatever `health_samples` holds: every figure named in
`samples.SAMPLE_FIGURES` (a `<name>_sum` and `<name>_n` column pair) becomes a series,
so a figure added there later shows up here without a change (under its API name when
`SERIES_NAMES` has one, else under its column prefix)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from monitoring.health.samples import SAMPLE_FIGURES, minute_of
from vcbridge.core.db.models import HealthSample, HealthTransition

STEP = timedelta(minutes=1)
# The API's names of the sample figures (the column prefixes of `health_samples`).
SERIES_NAMES = {
    "cpu": "cpu_percent",
    "net_rtt": "network_rtt_ms",
    "rtt": "rtt_ms",
    "jitter": "jitter_ms",
    "loss": "packet_loss_ratio",
    "fps": "fps",
    "bitrate_in": "bitrate_in_bps",
    "bitrate_out": "bitrate_out_bps",
    # The bridge's view of the same minutes (issue 14), beside the site's.
    "bridge_rtt": "bridge_rtt_ms",
    "bridge_jitter": "bridge_jitter_ms",
    "bridge_loss": "bridge_packet_loss_ratio",
    "bridge_fps": "bridge_fps",
    "bridge_bitrate_in": "bridge_bitrate_in_bps",
    "bridge_bitrate_out": "bridge_bitrate_out_bps",
}
# Counts per minute: 0 where no heartbeat came (a row is written only for a minute
# with at least one heartbeat).
COUNTS = ("heartbeats", "in_call", "degraded")
# A window holds at most this many transitions (the newest); a flapping endpoint
# could otherwise make one answer arbitrarily large.
MAX_TRANSITIONS = 500


@dataclass(frozen=True)
class History:
    """The window [start, end) minute by minute, and its transitions (oldest first)."""

    start: datetime
    end: datetime
    series: dict[str, list[float | int | None]]
    state_at_start: str | None
    transitions: list[HealthTransition]
    transitions_total: int

    @property
    def minutes(self) -> int:
        return int((self.end - self.start) / STEP)


def window(now: datetime, hours: int) -> tuple[datetime, datetime]:
    """The whole minutes of the last `hours`, the minute running now included."""
    end = minute_of(now) + STEP
    return end - timedelta(hours=hours), end


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 4) if count else None


async def _series(session: AsyncSession, endpoint_id: int, start: datetime, end: datetime
                  ) -> dict[str, list[float | int | None]]:
    table = cast(Table, HealthSample.__table__)
    slots = int((end - start) / STEP)
    series: dict[str, list[float | int | None]] = {name: [0] * slots for name in COUNTS}
    figures = [name for name in SAMPLE_FIGURES
               if f"{name}_sum" in table.c and f"{name}_n" in table.c]
    for name in figures:
        series[SERIES_NAMES.get(name, name)] = [None] * slots
    rows = await session.execute(
        select(table).where(table.c.endpoint_id == endpoint_id, table.c.minute >= start,
                            table.c.minute < end)
    )
    for row in rows.mappings():
        # UtcDateTime gives aware UTC times on every engine.
        slot = int((row["minute"] - start) / STEP)
        if not 0 <= slot < slots:
            continue
        for name in COUNTS:
            series[name][slot] = int(row[name] or 0)
        for name in figures:
            series[SERIES_NAMES.get(name, name)][slot] = _mean(row[f"{name}_sum"] or 0.0,
                                                               int(row[f"{name}_n"] or 0))
    return series


async def _transitions(session: AsyncSession, endpoint_id: int, start: datetime,
                       end: datetime) -> tuple[str | None, list[HealthTransition], int]:
    before = await session.scalar(
        select(HealthTransition.state)
        .where(HealthTransition.endpoint_id == endpoint_id, HealthTransition.at < start)
        .order_by(HealthTransition.at.desc(), HealthTransition.id.desc()).limit(1)
    )
    within = (HealthTransition.endpoint_id == endpoint_id) & (HealthTransition.at >= start) \
        & (HealthTransition.at < end)
    total = int(await session.scalar(
        select(func.count()).select_from(HealthTransition).where(within)) or 0)
    newest = list(await session.scalars(
        select(HealthTransition).where(within)
        .order_by(HealthTransition.at.desc(), HealthTransition.id.desc())
        .limit(MAX_TRANSITIONS)
    ))
    return before, newest[::-1], total


async def build_history(session: AsyncSession, endpoint_id: int, now: datetime,
                        hours: int) -> History:
    """The last `hours` of `endpoint_id` up to `now`."""
    start, end = window(now, hours)
    series = await _series(session, endpoint_id, start, end)
    state_at_start, transitions, total = await _transitions(session, endpoint_id, start, end)
    return History(start, end, series, state_at_start, transitions, total)


def series_keys() -> list[str]:
    """The names of the series every answer carries (for the API's documentation)."""
    return [*COUNTS, *(SERIES_NAMES.get(name, name) for name in SAMPLE_FIGURES)]

