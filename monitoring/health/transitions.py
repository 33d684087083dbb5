"""Recording a change of an endpoint's health: the only code that changes a state.

Under the row's lock `record` merges what the caller knows with what the row
says (the newest heartbeat wins), re-reads the event-stream presence, evaluates
the model, and when the state or the reasons changed writes a
`health_transitions` row and publishes `endpoint.health`. So two processes that
notice the same change record it once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from monitoring.health.codec import test_call_from_json
from monitoring.health.latest import Latest
from monitoring.health.model import (
    Health,
    HealthState,
    Observation,
    Reason,
    ReasonCode,
    Thresholds,
    evaluate,
)
from monitoring.health.store import (
    EndpointInfo,
    PresenceRules,
    decode_row,
    insert_for,
    load_presence,
)
from monitoring.responses import HealthReason
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db.models import EndpointHealth, HealthTransition
from vcbridge.core.event_types import EventType
from vcbridge.core.events import EventBus
from vcbridge.core.http.render import body_of


@dataclass(frozen=True)
class Recorded:
    """The endpoint's health as stored after `record`."""

    health: Health
    since: datetime
    transitioned: bool


@dataclass(frozen=True)
class Change:
    """An endpoint whose state or reasons may have changed, and when that was seen."""

    endpoint: EndpointInfo
    known: Latest  # what the caller knows (merged with the row: the newest wins)
    changed_at: datetime | None = None  # when a heartbeat revealed it (default: now)


async def record(
    session: AsyncSession,
    changes: Sequence[Change],
    now: datetime,
    thresholds: Thresholds,
    presence_rules: PresenceRules,
    bus: EventBus,
    zone: Any,
) -> dict[int, Recorded]:
    """Bring the rows of `changes` up to date, in the caller's transaction.

    Set-based: the rows (locked, in id order so processes cannot deadlock),
    their presence and their last transition times are read with one query
    each, whatever the number of endpoints (after an outage they all change
    at once). Each endpoint is evaluated on the newest of what the caller
    knows and what its row says; a transition is dated `changed_at`, or for
    a silent endpoint its last heartbeat + offline_after, and never before
    the endpoint's previous transition. Endpoints never heard of are skipped."""
    by_id = {c.endpoint.id: c for c in changes}
    if not by_id:
        return {}
    ids = sorted(by_id)
    rows = await _locked_rows(session, ids)
    missing = [i for i in ids if i not in rows and by_id[i].known.report is not None]
    if missing:
        # Another process may insert the same first row: insert-or-nothing, then lock.
        await session.execute(
            insert_for(session)(EndpointHealth).on_conflict_do_nothing(
                index_elements=["endpoint_id"]),
            [{"endpoint_id": i, "state": HealthState.OFFLINE.value,
              "reasons": [Reason(ReasonCode.NEVER_SEEN).to_store()], "since": now,
              "updated_at": now} for i in missing],
        )
        rows |= await _locked_rows(session, missing)
    presence = await load_presence(session, now, presence_rules, ids)
    last_at: dict[int, datetime] = {
        endpoint_id: at for endpoint_id, at in await session.execute(
            select(HealthTransition.endpoint_id, func.max(HealthTransition.at))
            .where(HealthTransition.endpoint_id.in_(ids))
            .group_by(HealthTransition.endpoint_id)
        )
    }
    results: dict[int, Recorded] = {}
    with session.no_autoflush:  # one flush at commit, not one per published event
        for endpoint_id in ids:
            recorded = await _record_one(session, by_id[endpoint_id], rows.get(endpoint_id),
                                         presence, last_at, now, thresholds, bus, zone)
            if recorded is not None:
                results[endpoint_id] = recorded
    return results


async def _record_one(
    session: AsyncSession, change: Change, row: EndpointHealth | None,
    presence: Mapping[int, bool], last_at: Mapping[int, datetime], now: datetime,
    thresholds: Thresholds, bus: EventBus, zone: Any,
) -> Recorded | None:
    endpoint_id = change.endpoint.id
    if row is None:
        return None
    stored = decode_row(row) if row.report is not None else None  # None: a fresh row
    latest = change.known.newer(stored.latest) if stored is not None else change.known
    report = latest.report
    if report is None:
        return None
    previous_codes = stored.codes if stored is not None else frozenset()
    health = evaluate(Observation(report, presence.get(endpoint_id, False), latest.test_call,
                                  previous_codes), now, thresholds)
    previous_state = stored.state if stored is not None else None
    transitioned = previous_state is None or not health.same_as(previous_state, previous_codes)
    if transitioned:
        at = min(change.changed_at or now, now)
        if health.state is HealthState.OFFLINE and previous_state is not HealthState.OFFLINE:
            # Silent since the last heartbeat: offline from when the rule says so, not
            # from when a sweep noticed (or the service came back after a stop).
            at = min(report.received_at + thresholds.offline_after, now)
        before = last_at.get(endpoint_id)
        if before is not None:
            at = max(at, before)  # transitions stay in order
        stored_reasons = [r.to_store() for r in health.reasons]
        session.add(HealthTransition(
            endpoint_id=endpoint_id, at=at, state=health.state.value,
            previous=previous_state.value if previous_state else None, reasons=stored_reasons,
        ))
        if health.state is not previous_state:
            row.since = at
        row.state, row.reasons = health.state.value, stored_reasons
        await bus.publish(
            session, EventType.ENDPOINT_HEALTH, now, endpoint=change.endpoint.code,
            audience=[change.endpoint.code],
            data={
                "state": health.state.value,
                "previous": previous_state.value if previous_state else None,
                "since": to_local_iso(row.since, zone),
                "reasons": [body_of(HealthReason.of(r, zone, now)) for r in health.reasons],
            },
        )
    if latest.report_json is not None and (
            row.last_heartbeat is None or report.received_at > row.last_heartbeat):
        row.last_heartbeat = report.received_at
        row.report = latest.report_json
    if latest.test_call_json is not None and latest.test_call is not None:
        stored_test = test_call_from_json(row.test_call)
        if stored_test is None or latest.test_call.at > stored_test.at:
            row.test_call = latest.test_call_json
    row.updated_at = now
    return Recorded(health, row.since, transitioned)


async def _locked_rows(session: AsyncSession, ids: Sequence[int]) -> dict[int, EndpointHealth]:
    rows = await session.scalars(
        select(EndpointHealth).where(EndpointHealth.endpoint_id.in_(list(ids)))
        .order_by(EndpointHealth.endpoint_id).with_for_update()
        .execution_options(populate_existing=True)
    )
    return {row.endpoint_id: row for row in rows}
