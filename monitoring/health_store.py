"""The health tables: the shared latest view, transitions, per-minute samples.

`endpoint_health` holds one row per endpoint that ever sent a heartbeat: its
state, reasons and the newest figures. `record` is the only code that
changes a state: under the row's lock it merges what the caller knows with
what the row says (the newest heartbeat wins), re-reads the event-stream
presence, evaluates the model, and when the state or the reasons changed
writes a `health_transitions` row and publishes `endpoint.health`. So two
processes that notice the same change record it once."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, cast

from sqlalchemy import Table, Text, bindparam, delete, func, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from monitoring.health_model import (
    CallFigures,
    Devices,
    Health,
    HealthState,
    Observation,
    Reason,
    ReasonCode,
    Report,
    TestCall,
    Thresholds,
    evaluate,
    stream_connected,
)
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db.models import (
    Endpoint,
    EndpointHealth,
    EndpointPresence,
    HealthSample,
    HealthTransition,
)
from vcbridge.core.event_types import EventType
from vcbridge.core.events import EventBus

# The figures of a sample: (column prefix, where in the report).
SAMPLE_FIGURES = ("cpu", "net_rtt", "rtt", "jitter", "loss", "fps", "bitrate_in", "bitrate_out")
# Transitions shown with an endpoint's detail.
RECENT_TRANSITIONS = 50


@dataclass(frozen=True)
class PresenceRules:
    """How presence rows read as "holds the event stream"."""

    stale_after: timedelta
    grace: timedelta


# -- the JSON forms kept in endpoint_health ------------------------------------------


def report_to_json(report: Report) -> dict[str, Any]:
    """The stored (and API) form of a heartbeat's facts."""
    call = report.call
    return {
        "received_at": report.received_at.isoformat(),
        "sent_at": report.sent_at.isoformat() if report.sent_at else None,
        "clock_offset_seconds": round(report.clock_offset_seconds, 3),
        "agent_version": report.agent_version,
        "devices": {"camera": report.devices.camera, "microphone": report.devices.microphone,
                    "speaker": report.devices.speaker},
        "cpu_percent": report.cpu_percent,
        "network": {"interface": report.network_interface, "rtt_ms": report.network_rtt_ms},
        "call": None if call is None else {
            "conference": call.conference, "rtt_ms": call.rtt_ms, "jitter_ms": call.jitter_ms,
            "packet_loss_ratio": call.packet_loss_ratio, "bitrate_in_bps": call.bitrate_in_bps,
            "bitrate_out_bps": call.bitrate_out_bps, "fps": call.fps,
            "audio_level": call.audio_level,
        },
    }


def report_from_json(body: Mapping[str, Any] | None) -> Report | None:
    """The model's `Report` from its stored form (None when absent or unreadable)."""
    if not body:
        return None
    try:
        devices = body["devices"]
        call = body.get("call")
        network = body.get("network") or {}
        return Report(
            received_at=datetime.fromisoformat(body["received_at"]),
            devices=Devices(bool(devices["camera"]), bool(devices["microphone"]),
                            bool(devices["speaker"])),
            clock_offset_seconds=float(body.get("clock_offset_seconds") or 0.0),
            cpu_percent=body.get("cpu_percent"),
            network_rtt_ms=network.get("rtt_ms"),
            call=None if call is None else CallFigures(**call),
            sent_at=datetime.fromisoformat(body["sent_at"]) if body.get("sent_at") else None,
            agent_version=body.get("agent_version"),
            network_interface=network.get("interface"),
        )
    except (KeyError, TypeError, ValueError):
        return None


def test_call_to_json(test_call: TestCall) -> dict[str, Any]:
    return {"ok": test_call.ok, "at": test_call.at.isoformat(),
            "audio_packets": test_call.audio_packets, "video_frames": test_call.video_frames,
            "loss": test_call.loss, "rtt_ms": test_call.rtt_ms}


def test_call_from_json(body: Mapping[str, Any] | None) -> TestCall | None:
    if not body:
        return None
    try:
        return TestCall(ok=bool(body["ok"]), at=datetime.fromisoformat(body["at"]),
                        audio_packets=int(body.get("audio_packets") or 0),
                        video_frames=int(body.get("video_frames") or 0),
                        loss=body.get("loss"), rtt_ms=body.get("rtt_ms"))
    except (KeyError, TypeError, ValueError):
        return None


def reasons_from_store(items: Iterable[Mapping[str, Any]] | None) -> tuple[Reason, ...]:
    reasons = (Reason.from_store(item) for item in items or ())
    return tuple(r for r in reasons if r is not None)


@dataclass(frozen=True)
class Latest:
    """The newest facts about an endpoint (from memory or from its row)."""

    report: Report | None = None
    test_call: TestCall | None = None

    # The stored (and API) forms, made only when asked for: most heartbeats are never
    # written or shown.
    @cached_property
    def report_json(self) -> dict[str, Any] | None:
        return None if self.report is None else report_to_json(self.report)

    @cached_property
    def test_call_json(self) -> dict[str, Any] | None:
        return None if self.test_call is None else test_call_to_json(self.test_call)

    def newer(self, other: Latest) -> Latest:
        """Each part from whichever of the two is newer."""
        mine, theirs = self.report, other.report
        use_mine = theirs is None or (mine is not None and mine.received_at >= theirs.received_at)
        mine_tc, theirs_tc = self.test_call, other.test_call
        use_mine_tc = theirs_tc is None or (mine_tc is not None and mine_tc.at >= theirs_tc.at)
        return Latest(self.report if use_mine else other.report,
                      self.test_call if use_mine_tc else other.test_call)


@dataclass(frozen=True)
class Stored:
    """An endpoint_health row, decoded (its report only when it was read)."""

    endpoint_id: int
    state: HealthState
    reasons: tuple[Reason, ...]
    since: datetime
    last_heartbeat: datetime | None
    latest: Latest

    @property
    def codes(self) -> frozenset[ReasonCode]:
        return frozenset(r.code for r in self.reasons)


def _state(text: str) -> HealthState:
    try:
        return HealthState(text)
    except ValueError:
        return HealthState.OFFLINE


def _decode(row: EndpointHealth) -> Stored:
    report = report_from_json(row.report)
    test_call = test_call_from_json(row.test_call)
    return Stored(row.endpoint_id, _state(row.state), reasons_from_store(row.reasons),
                  row.since, row.last_heartbeat,
                  Latest(report, test_call))


# -- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointInfo:
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
    return {row.endpoint_id: _decode(row) for row in await session.scalars(query)}


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
    wanted = [int(raw[0]) for raw in fresh if needs_report(int(raw[0]), _utc(raw[4]))]
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
        test_call = _decoded(test_call_text, _decode_test_call)
        stored[endpoint_id] = Stored(
            endpoint_id, _state(state), _decoded(reasons_text, _decode_reasons), _utc(since),
            _utc(last_heartbeat),
            Latest(report, test_call))
        cache[endpoint_id] = (raw, stored[endpoint_id])
    if not partial:
        for endpoint_id in [i for i in cache if i not in stored]:
            del cache[endpoint_id]
    return stored


def _utc(value: Any) -> Any:
    """A stored time as an aware UTC datetime (SQLite: naive UTC text; PostgreSQL: aware)."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _decoded(value: Any, decode: Callable[[Any], Any]) -> Any:
    """A JSON column read as text (SQLite) or already decoded (asyncpg), decoded."""
    return decode(json.loads(value) if isinstance(value, str) else value)


def _decode_reasons(body: Any) -> tuple[Reason, ...]:
    return reasons_from_store(body if isinstance(body, list) else None)


def _decode_test_call(body: Any) -> TestCall | None:
    return test_call_from_json(body if isinstance(body, dict) else None)


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
    rows = await session.scalars(
        select(HealthTransition).where(HealthTransition.endpoint_id == endpoint_id)
        .order_by(HealthTransition.at.desc(), HealthTransition.id.desc()).limit(limit)
    )
    return list(rows)


def transition_json(row: HealthTransition, zone: Any, now: datetime) -> dict[str, Any]:
    return {
        "at": to_local_iso(row.at, zone),
        "state": row.state,
        "previous": row.previous,
        "reasons": [r.to_json(zone, now) for r in reasons_from_store(row.reasons)],
    }


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 4) if count else None


def sample_json(row: HealthSample, zone: Any) -> dict[str, Any]:
    """A minute's means (None where nothing was measured)."""
    return {
        "minute": to_local_iso(row.minute, zone),
        "heartbeats": row.heartbeats,
        "degraded": row.degraded,
        "in_call": row.in_call,
        "cpu_percent": _mean(row.cpu_sum, row.cpu_n),
        "network_rtt_ms": _mean(row.net_rtt_sum, row.net_rtt_n),
        "rtt_ms": _mean(row.rtt_sum, row.rtt_n),
        "jitter_ms": _mean(row.jitter_sum, row.jitter_n),
        "packet_loss_ratio": _mean(row.loss_sum, row.loss_n),
        "fps": _mean(row.fps_sum, row.fps_n),
        "bitrate_in_bps": _mean(row.bitrate_in_sum, row.bitrate_in_n),
        "bitrate_out_bps": _mean(row.bitrate_out_sum, row.bitrate_out_n),
    }


async def samples_since(session: AsyncSession, endpoint_id: int, since: datetime
                        ) -> list[HealthSample]:
    rows = await session.scalars(
        select(HealthSample).where(HealthSample.endpoint_id == endpoint_id,
                                   HealthSample.minute >= since)
        .order_by(HealthSample.minute)
    )
    return list(rows)


# -- recording a change ---------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """The endpoint's health as stored after `record`."""

    health: Health
    since: datetime
    transitioned: bool


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


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
            _insert(session)(EndpointHealth).on_conflict_do_nothing(
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
    stored = _decode(row) if row.report is not None else None  # None: a fresh row
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
                "reasons": [r.to_json(zone, now) for r in health.reasons],
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


# -- samples -------------------------------------------------------------------------------


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
        for name, value in figures:
            if value is not None and math.isfinite(value):
                self.sums[name] = self.sums.get(name, 0.0) + value
                self.counts[name] = self.counts.get(name, 0) + 1

    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "endpoint_id": self.endpoint_id, "minute": self.minute,
            "heartbeats": self.heartbeats, "degraded": self.degraded, "in_call": self.in_call,
        }
        for name in SAMPLE_FIGURES:
            values[f"{name}_sum"] = self.sums.get(name, 0.0)
            values[f"{name}_n"] = self.counts.get(name, 0)
        return values


def minute_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


async def add_samples(session: AsyncSession, buckets: Sequence[Bucket]) -> None:
    """Add the buckets to their minute rows (insert, or add to the sums already there)."""
    if not buckets:
        return
    insert = _insert(session)
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
    result = await session.execute(delete(HealthSample).where(HealthSample.minute < before))
    return int(getattr(result, "rowcount", 0) or 0)
