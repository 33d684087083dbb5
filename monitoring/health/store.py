"""The health rows: the roster as health sees it, `endpoint_health` read (whole, or
lightly for the sweep) and its newest figures refreshed, presence, transitions read.

`endpoint_health` holds one row per endpoint that ever sent a heartbeat: its
state, reasons and the newest figures. Changing a state is
`transitions.record`'s job; per-minute samples are `samples.py`'s."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, Text, bindparam, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from monitoring import responses
from monitoring.health.codec import (
    decode_reasons,
    decode_test_call,
    decoded,
    reasons_from_store,
    report_from_json,
    state_of,
    test_call_from_json,
    utc,
)
from monitoring.health.latest import Latest, Stored
from monitoring.health.model import stream_connected
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db.models import (
    Endpoint,
    EndpointHealth,
    EndpointPresence,
    HealthTransition,
)

# Transitions shown with an endpoint's detail.
RECENT_TRANSITIONS = 50


@dataclass(frozen=True)
class PresenceRules:
    """How presence rows read as "holds the event stream"."""

    stale_after: timedelta
    grace: timedelta


def decode_row(row: EndpointHealth) -> Stored:
    """An `endpoint_health` row as the monitor uses it."""
    report = report_from_json(row.report)
    test_call = test_call_from_json(row.test_call)
    return Stored(row.endpoint_id, state_of(row.state), reasons_from_store(row.reasons),
                  row.since, row.last_heartbeat,
                  Latest(report, test_call))


def insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT (with ON CONFLICT) for the session's database."""
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


# -- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointInfo:
    """An endpoint as health shows it."""

    id: int
    code: str
    name: str
    name_en: str


async def active_endpoints(session: AsyncSession, ids: Iterable[int] | None = None
                           ) -> list[EndpointInfo]:
    """The active roster (or the given endpoints, active or not), in roster order."""
    query = select(Endpoint.id, Endpoint.code, Endpoint.name, Endpoint.name_en)
    query = (query.where(Endpoint.active.is_(True)) if ids is None
             else query.where(Endpoint.id.in_(list(ids))))
    rows = await session.execute(query.order_by(Endpoint.id))
    return [EndpointInfo(*row) for row in rows]


async def load_stored(session: AsyncSession, ids: Iterable[int] | None = None
                      ) -> dict[int, Stored]:
    """The rows of `ids` (default: all), reports included."""
    query = select(EndpointHealth)
    if ids is not None:
        query = query.where(EndpointHealth.endpoint_id.in_(list(ids)))
    return {row.endpoint_id: decode_row(row) for row in await session.scalars(query)}


RowCache = dict[int, tuple[tuple[Any, ...], "Stored"]]


async def load_stored_light(
    session: AsyncSession, needs_report: Callable[[int, datetime | None], bool],
    cache: RowCache, changed_since: datetime | None = None,
) -> dict[int, Stored]:
    """Every row, for the sweep (all rows every few seconds, so kept cheap):

    - the (largest) report column only of rows for which
      `needs_report(endpoint_id, last_heartbeat)` says so (a process that holds
      newer figures in memory skips them);
    - JSON and times as the driver gives them (SQLAlchemy's SQLite date parser is
      slow);
    - a row identical to the one in `cache` (the previous sweep's) is not decoded again;
    - with `changed_since`, only rows written since then are read (the others are the
      cache's; rows are never deleted, and a full read now and then catches up)."""
    t = EndpointHealth
    query = select(t.endpoint_id, t.state, type_coerce(t.reasons, Text),
                   type_coerce(t.since, Text), type_coerce(t.last_heartbeat, Text),
                   type_coerce(t.test_call, Text))
    partial = changed_since is not None and bool(cache)
    if partial:
        query = query.where(t.updated_at >= changed_since)
    rows = (await session.execute(query)).all()
    stored: dict[int, Stored] = (
        {endpoint_id: hit[1] for endpoint_id, hit in cache.items()} if partial else {})
    fresh: list[tuple[Any, ...]] = []
    for row in rows:
        raw: tuple[Any, ...] = tuple(row)
        hit = cache.get(int(raw[0]))
        if hit is not None and hit[0] == raw:
            stored[int(raw[0])] = hit[1]
        else:
            fresh.append(raw)
    wanted = [int(raw[0]) for raw in fresh if needs_report(int(raw[0]), utc(raw[4]))]
    reports: dict[int, Any] = {}
    for start in range(0, len(wanted), 500):
        for endpoint_id, report_body in await session.execute(
                select(t.endpoint_id, t.report)
                .where(t.endpoint_id.in_(wanted[start:start + 500]))):
            reports[endpoint_id] = report_body
    for raw in fresh:
        endpoint_id = int(raw[0])
        state, reasons_text, since, last_heartbeat, test_call_text = raw[1:]
        report_body = reports.get(endpoint_id)
        report = report_from_json(report_body)
        test_call = decoded(test_call_text, decode_test_call)
        stored[endpoint_id] = Stored(
            endpoint_id, state_of(state), decoded(reasons_text, decode_reasons), utc(since),
            utc(last_heartbeat),
            Latest(report, test_call))
        cache[endpoint_id] = (raw, stored[endpoint_id])
    if not partial:
        for endpoint_id in [i for i in cache if i not in stored]:
            del cache[endpoint_id]
    return stored


async def load_presence(session: AsyncSession, now: datetime, rules: PresenceRules,
                        ids: Iterable[int] | None = None) -> dict[int, bool]:
    """Endpoint id -> whether it holds the event stream."""
    query = select(EndpointPresence.endpoint_id, EndpointPresence.connections,
                   EndpointPresence.last_seen)
    if ids is not None:
        query = query.where(EndpointPresence.endpoint_id.in_(list(ids)))
    return {
        endpoint_id: stream_connected(connections, last_seen, now, rules.stale_after,
                                      rules.grace)
        for endpoint_id, connections, last_seen in await session.execute(query)
    }


async def recent_transitions(session: AsyncSession, endpoint_id: int,
                             limit: int = RECENT_TRANSITIONS) -> list[HealthTransition]:
    """An endpoint's latest transitions, newest first."""
    rows = await session.scalars(
        select(HealthTransition).where(HealthTransition.endpoint_id == endpoint_id)
        .order_by(HealthTransition.at.desc(), HealthTransition.id.desc()).limit(limit)
    )
    return list(rows)


def transition_of(row: HealthTransition, zone: Any, now: datetime
                  ) -> responses.HealthTransitionItem:
    """A transition as the API shows it."""
    return responses.HealthTransitionItem(
        at=to_local_iso(row.at, zone),
        state=state_of(row.state),
        previous=state_of(row.previous) if row.previous is not None else None,
        reasons=[responses.HealthReason.of(r, zone, now)
                 for r in reasons_from_store(row.reasons)],
    )


async def write_latest(session: AsyncSession, rows: Sequence[tuple[int, Latest]],
                       now: datetime) -> None:
    """Refresh the newest figures of rows that exist, never replacing newer ones."""
    heartbeats = [
        {"b_id": endpoint_id, "b_at": latest.report.received_at, "b_report": latest.report_json,
         "b_now": now}
        for endpoint_id, latest in rows if latest.report is not None
    ]
    if heartbeats:
        table = cast(Table, EndpointHealth.__table__)
        stmt = (
            update(table)
            .where(table.c.endpoint_id == bindparam("b_id"),
                   (table.c.last_heartbeat.is_(None))
                   | (table.c.last_heartbeat < bindparam("b_at")))
            .values(last_heartbeat=bindparam("b_at"), report=bindparam("b_report"),
                    updated_at=bindparam("b_now"))
        )
        await session.execute(stmt, heartbeats)
    for endpoint_id, latest in rows:
        if latest.test_call_json is not None and latest.test_call is not None:
            row = await session.get(EndpointHealth, endpoint_id, with_for_update=True)
            if row is not None:
                stored = test_call_from_json(row.test_call)
                if stored is None or latest.test_call.at > stored.at:
                    row.test_call = latest.test_call_json
