"""Which endpoints are on line: their agent or console holds the event stream open.

Kept in the database so every process (and the scheduler leader) sees the same
answer. The monitoring package refines this with heartbeats and media stats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vcbridge.core.db.models import EndpointPresence


async def connected(session: AsyncSession, endpoint_id: int, now: datetime) -> None:
    """Count one more open connection of an endpoint."""
    row = await session.get(EndpointPresence, endpoint_id, with_for_update=True)
    if row is None:
        session.add(EndpointPresence(endpoint_id=endpoint_id, connections=1, last_seen=now))
    else:
        row.connections, row.last_seen = row.connections + 1, now


async def disconnected(session: AsyncSession, endpoint_id: int, now: datetime) -> None:
    """Count one connection fewer."""
    row = await session.get(EndpointPresence, endpoint_id, with_for_update=True)
    if row is not None:
        row.connections, row.last_seen = max(row.connections - 1, 0), now


async def seen(session: AsyncSession, endpoint_ids: Iterable[int], now: datetime) -> None:
    """Refresh the last-seen time of endpoints with an open connection (one statement)."""
    ids = sorted(set(endpoint_ids))
    for start in range(0, len(ids), 500):  # bounded IN lists
        await session.execute(
            update(EndpointPresence)
            .where(EndpointPresence.endpoint_id.in_(ids[start:start + 500]))
            .values(last_seen=now)
        )


class OpenStreams:
    """The endpoints with an event stream open to this process, kept seen in the
    database by one periodic statement for all of them (not one task each: a
    thousand agents would otherwise cost a write every few milliseconds)."""

    def __init__(self) -> None:
        self._counts: Counter[int] = Counter()

    def opened(self, endpoint_id: int) -> None:
        self._counts[endpoint_id] += 1

    def closed(self, endpoint_id: int) -> None:
        self._counts[endpoint_id] -= 1
        if self._counts[endpoint_id] <= 0:
            del self._counts[endpoint_id]

    @property
    def endpoint_ids(self) -> list[int]:
        return list(self._counts)


async def online(
    session: AsyncSession, endpoint_ids: Iterable[int], now: datetime, stale_after: timedelta
) -> set[int]:
    """The endpoints among `endpoint_ids` with a connection seen within `stale_after`.

    A process killed without closing its sockets leaves a count behind; the
    last-seen time stops moving, so such an endpoint turns offline anyway."""
    rows = await session.scalars(
        select(EndpointPresence.endpoint_id).where(
            EndpointPresence.endpoint_id.in_(list(endpoint_ids)),
            EndpointPresence.connections > 0,
            EndpointPresence.last_seen > now - stale_after,
        )
    )
    return set(rows)
