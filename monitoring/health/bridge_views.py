"""The bridge's view of each endpoint's media, shared between processes.

Rooms are per process, so the bridge's figures of a site exist only in the
process carrying its media, while the health model runs wherever the site's
heartbeats land (the process holding its event stream). The carrying process
takes a view every sampling window (`HealthMonitor.bridge_media`) and its sweep
writes the new ones to `bridge_media`, one row per endpoint; every sweep reads
the rows measured lately, and the newest view of an endpoint wins. In one
process the view is used from memory at once; across processes it arrives
within a sweep or two (`health_sweep_seconds`). A view counts for the health
model while it is fresh (`max_age`): a room that stopped reporting, or a site
that left it, no longer speaks for the call."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from monitoring.health.codec import utc
from monitoring.health.model import BridgeView, CallFigures
from monitoring.health.store import insert_for
from vcbridge.core.db.models import BridgeMedia

FIGURES = ("rtt_ms", "jitter_ms", "packet_loss_ratio", "bitrate_in_bps", "bitrate_out_bps",
           "fps")


def max_age(interval_seconds: float, sweep_seconds: float) -> timedelta:
    """How long a bridge view speaks for the call: two sampling windows, plus the two
    sweeps that carry it from the measuring process to the judging one."""
    return timedelta(seconds=2 * interval_seconds + 2 * sweep_seconds)


def fresh(view: BridgeView | None, now: datetime, age: timedelta) -> CallFigures | None:
    """The figures of `view` when it is recent enough to judge the call by, else None."""
    if view is None or view.figures is None or now - view.measured_at > age:
        return None
    return view.figures


async def write_views(session: AsyncSession, views: Mapping[int, BridgeView]) -> None:
    """Upsert the views measured by this process (a newer row of another process is kept)."""
    if not views:
        return
    insert = insert_for(session)
    stmt = insert(BridgeMedia)
    columns = ("measured_at", "connected", *FIGURES)
    stmt = stmt.on_conflict_do_update(
        index_elements=["endpoint_id"],
        set_={name: stmt.excluded[name] for name in columns},
        where=BridgeMedia.measured_at < stmt.excluded.measured_at,
    )
    rows = []
    for endpoint_id, view in views.items():
        figures = view.figures
        row: dict[str, object] = {"endpoint_id": endpoint_id, "measured_at": view.measured_at,
                                  "connected": figures is not None}
        for name in FIGURES:
            row[name] = getattr(figures, name) if figures is not None else None
        rows.append(row)
    await session.execute(stmt, rows)


async def read_views(session: AsyncSession, since: datetime) -> dict[int, BridgeView]:
    """The views measured since `since`, by endpoint id."""
    t = BridgeMedia
    rows = await session.execute(
        select(t.endpoint_id, t.measured_at, t.connected,
               *(getattr(t, name) for name in FIGURES))
        .where(t.measured_at >= since))
    views: dict[int, BridgeView] = {}
    for endpoint_id, measured_at, connected, *figures in rows:
        views[endpoint_id] = BridgeView(
            utc(measured_at),
            CallFigures(**dict(zip(FIGURES, figures, strict=True))) if connected else None)
    return views
