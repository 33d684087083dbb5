"""Per-minute samples of each endpoint's figures: the buckets a process fills from
heartbeats (the site's view) and from its rooms' media (the bridge's view), their rows
in `health_samples` (added to, pruned) and their API form."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from monitoring import responses
from monitoring.health.model import CallFigures, Report
from monitoring.health.store import insert_for
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db.models import HealthSample

# The figures of a sample (column prefixes): the site's, from its heartbeats...
SITE_FIGURES = ("cpu", "net_rtt", "rtt", "jitter", "loss", "fps", "bitrate_in", "bitrate_out")
# ... and the bridge's, one per sampling window of the room carrying its media.
BRIDGE_FIGURES = ("bridge_rtt", "bridge_jitter", "bridge_loss", "bridge_fps",
                  "bridge_bitrate_in", "bridge_bitrate_out")
SAMPLE_FIGURES = SITE_FIGURES + BRIDGE_FIGURES


@dataclass
class Bucket:
    """One endpoint's heartbeats within one minute, as sums and counts."""

    endpoint_id: int
    minute: datetime
    heartbeats: int = 0
    degraded: int = 0
    in_call: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, report: Report, degraded: bool) -> None:
        """Add one heartbeat's figures (`degraded`: the endpoint was not ok)."""
        self.heartbeats += 1
        self.degraded += int(degraded)
        call = report.call
        figures: list[tuple[str, float | None]] = [
            ("cpu", report.cpu_percent), ("net_rtt", report.network_rtt_ms)]
        if call is not None:
            self.in_call += 1
            figures += [("rtt", call.rtt_ms), ("jitter", call.jitter_ms),
                        ("loss", call.packet_loss_ratio), ("fps", call.fps),
                        ("bitrate_in", call.bitrate_in_bps), ("bitrate_out", call.bitrate_out_bps)]
        self._add(figures)

    def add_bridge(self, figures: CallFigures) -> None:
        """Add one sampling window of the bridge's view."""
        self._add([("bridge_rtt", figures.rtt_ms), ("bridge_jitter", figures.jitter_ms),
                   ("bridge_loss", figures.packet_loss_ratio), ("bridge_fps", figures.fps),
                   ("bridge_bitrate_in", figures.bitrate_in_bps),
                   ("bridge_bitrate_out", figures.bitrate_out_bps)])

    def _add(self, figures: list[tuple[str, float | None]]) -> None:
        for name, value in figures:
            if value is not None and math.isfinite(value):
                self.sums[name] = self.sums.get(name, 0.0) + value
                self.counts[name] = self.counts.get(name, 0) + 1

    def values(self) -> dict[str, Any]:
        """The row's columns."""
        values: dict[str, Any] = {
            "endpoint_id": self.endpoint_id, "minute": self.minute,
            "heartbeats": self.heartbeats, "degraded": self.degraded, "in_call": self.in_call,
        }
        for name in SAMPLE_FIGURES:
            values[f"{name}_sum"] = self.sums.get(name, 0.0)
            values[f"{name}_n"] = self.counts.get(name, 0)
        return values


def minute_of(at: datetime) -> datetime:
    """The UTC minute `at` falls in."""
    return at.astimezone(UTC).replace(second=0, microsecond=0)


async def add_samples(session: AsyncSession, buckets: Sequence[Bucket]) -> None:
    """Add the buckets to their minute rows (insert, or add to the sums already there)."""
    if not buckets:
        return
    insert = insert_for(session)
    stmt = insert(HealthSample)
    added = ["heartbeats", "degraded", "in_call",
             *(f"{n}_{part}" for n in SAMPLE_FIGURES for part in ("sum", "n"))]
    table = cast(Table, HealthSample.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["endpoint_id", "minute"],
        set_={name: table.c[name] + stmt.excluded[name] for name in added},
    )
    await session.execute(stmt, [b.values() for b in buckets])


async def prune_samples(session: AsyncSession, before: datetime) -> int:
    """Delete the samples of minutes before `before`; how many were deleted."""
    result = await session.execute(delete(HealthSample).where(HealthSample.minute < before))
    return int(getattr(result, "rowcount", 0) or 0)


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 4) if count else None


def sample_of(row: HealthSample, zone: Any) -> responses.HealthSample:
    """A minute's means as the API shows them (None where nothing was measured)."""
    return responses.HealthSample(
        minute=to_local_iso(row.minute, zone),
        heartbeats=row.heartbeats,
        degraded=row.degraded,
        in_call=row.in_call,
        cpu_percent=_mean(row.cpu_sum, row.cpu_n),
        network_rtt_ms=_mean(row.net_rtt_sum, row.net_rtt_n),
        rtt_ms=_mean(row.rtt_sum, row.rtt_n),
        jitter_ms=_mean(row.jitter_sum, row.jitter_n),
        packet_loss_ratio=_mean(row.loss_sum, row.loss_n),
        fps=_mean(row.fps_sum, row.fps_n),
        bitrate_in_bps=_mean(row.bitrate_in_sum, row.bitrate_in_n),
        bitrate_out_bps=_mean(row.bitrate_out_sum, row.bitrate_out_n),
        bridge_rtt_ms=_mean(row.bridge_rtt_sum, row.bridge_rtt_n),
        bridge_jitter_ms=_mean(row.bridge_jitter_sum, row.bridge_jitter_n),
        bridge_packet_loss_ratio=_mean(row.bridge_loss_sum, row.bridge_loss_n),
        bridge_fps=_mean(row.bridge_fps_sum, row.bridge_fps_n),
        bridge_bitrate_in_bps=_mean(row.bridge_bitrate_in_sum, row.bridge_bitrate_in_n),
        bridge_bitrate_out_bps=_mean(row.bridge_bitrate_out_sum, row.bridge_bitrate_out_n),
    )


async def samples_since(session: AsyncSession, endpoint_id: int, since: datetime
                        ) -> list[HealthSample]:
    """An endpoint's samples from `since` on, oldest first."""
    rows = await session.scalars(
        select(HealthSample).where(HealthSample.endpoint_id == endpoint_id,
                                   HealthSample.minute >= since)
        .order_by(HealthSample.minute)
    )
    return list(rows)
