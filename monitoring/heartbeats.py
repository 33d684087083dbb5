"""Heartbeats: `POST /api/v1/endpoints/{code}/heartbeat` and the in-memory latest view.

An endpoint's agent reports every `health_heartbeat_interval_seconds` (5 s)
with its agent token. The fast path is memory only: the report replaces the
endpoint's latest view, is added to the current minute's sample, and the
model is evaluated against the state last stored. Only when the state or
its reasons change does the request write (one transaction: the
transition, the row, an `endpoint.health` event).

`HealthMonitor.sweep`, every `health_sweep_seconds` (2 s), is the slow path:
it reads the shared rows and the event-stream presence, records the
endpoints that went silent (offline) or whose presence changed, writes the
newest figures of each endpoint at most every `health_persist_seconds` (so
other processes see them), and adds finished minutes to `health_samples`.

Several processes: heartbeats may land on any of them. Each keeps the
latest view of what it received; the `endpoint_health` row is the shared
truth, merged with memory by "the newest heartbeat wins". A row lags at
most persist + sweep seconds behind (settings refuse a configuration where
that reaches `health_offline_after_seconds`), so no process takes a live
endpoint for silent. The flood limit is per process."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from monitoring import health_store as store
from monitoring.health_model import (
    CallFigures,
    Devices,
    Health,
    HealthState,
    Observation,
    ReasonCode,
    Report,
    TestCall,
    Thresholds,
    evaluate,
    offline_since,
)
from monitoring.health_store import Bucket, EndpointInfo, Latest, PresenceRules, Stored
from monitoring.responses import HeartbeatAnswer
from vcbridge.core.app_keys import CLOCK, ZONE
from vcbridge.core.auth.principal import Principal
from vcbridge.core.clock import Clock, to_local_iso
from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import TokenScope
from vcbridge.core.events import EventBus
from vcbridge.core.http.auth_middleware import require_principal
from vcbridge.core.http.errors import ApiError, forbidden
from vcbridge.core.http.json_schema import Documented, whole_number
from vcbridge.core.http.parsing import parse_model
from vcbridge.core.http.render import render
from vcbridge.core.settings import Settings

log = logging.getLogger(__name__)

# Buckets waiting for the database when it is down: beyond this the oldest are dropped.
MAX_PENDING_BUCKETS = 200_000
# The recorder waits this long after a change so a burst is written together...
RECORD_BATCH_SECONDS = 0.2
# ... in transactions of at most this many endpoints.
RECORD_CHUNK = 200
# The sweep re-reads the roster and every health row this often (in between: the rows
# written since the last sweep, read from this much earlier).
ROSTER_SECONDS = 30.0
SWEEP_OVERLAP = timedelta(seconds=10)

# Why a heartbeat was refused (the keys of `HealthMonitor.dropped`).
DROP_REASONS = ("unauthorized", "forbidden", "rate_limited", "too_large", "malformed", "invalid")


# -- the heartbeat body ----------------------------------------------------------------


def _in_range(value: datetime) -> datetime:
    # 0001-01-01T00:00:00+14:00 is valid RFC 3339 but not representable in UTC.
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date-time out of range") from None
    if not 2000 <= value.year <= 2200:
        raise ValueError("date-time out of range (years 2000-2200)")
    return value


When = Annotated[AwareDatetime, AfterValidator(_in_range),
                 Documented(pattern=r"^(2[01][0-9]{2}|2200)-")]
_STRICT = ConfigDict(extra="forbid", strict=True)


def _figure(high: float) -> Any:
    return Field(default=None, ge=0, le=high, allow_inf_nan=False)


class DevicesIn(BaseModel):
    """Whether each device is present and working, as the agent sees it."""

    model_config = _STRICT
    camera: bool
    microphone: bool
    speaker: bool


class NetworkIn(BaseModel):
    """The agent's network: its interface and the round-trip time to the server."""

    model_config = _STRICT
    interface: Annotated[str, Field(max_length=64)] | None = None
    rtt_ms: float | None = _figure(600_000)


class CallIn(BaseModel):
    """Media figures of the call the endpoint is in, over the last interval."""

    model_config = _STRICT
    conference: Annotated[int, Field(ge=1, le=2**62), whole_number] | None = None
    rtt_ms: float | None = _figure(600_000)
    jitter_ms: float | None = _figure(600_000)
    packet_loss_ratio: float | None = _figure(1)
    bitrate_in_bps: float | None = _figure(1e10)
    bitrate_out_bps: float | None = _figure(1e10)
    fps: float | None = _figure(1000)
    audio_level: float | None = _figure(1)


class TestCallIn(BaseModel):
    """The result of the agent's last short test call through the bridge."""

    model_config = _STRICT
    ok: bool
    at: When
    audio_packets: Annotated[int, Field(ge=0, le=10**9), whole_number] = 0
    video_frames: Annotated[int, Field(ge=0, le=10**9), whole_number] = 0
    loss: float | None = _figure(1)
    rtt_ms: float | None = _figure(600_000)


class Heartbeat(BaseModel):
    """POST /api/v1/endpoints/{code}/heartbeat (strict: no "5" for 5, no unknown field)."""

    model_config = _STRICT
    sent_at: When
    devices: DevicesIn
    cpu_percent: float | None = _figure(100)
    network: NetworkIn | None = None
    call: CallIn | None = None
    test_call: TestCallIn | None = None
    agent_version: Annotated[str, Field(max_length=64)] | None = None


class StreamHeartbeat(BaseModel):
    """A heartbeat sent on the event stream."""

    model_config = _STRICT
    type: Literal["heartbeat"]
    body: Heartbeat


def facts_of(body: Heartbeat, received_at: datetime) -> Latest:
    """The model's facts from an accepted heartbeat."""
    offset = (received_at - body.sent_at).total_seconds()
    call = None if body.call is None else CallFigures(**body.call.model_dump())
    network = body.network or NetworkIn()
    report = Report(
        received_at=received_at,
        devices=Devices(body.devices.camera, body.devices.microphone, body.devices.speaker),
        clock_offset_seconds=offset,
        cpu_percent=body.cpu_percent,
        network_rtt_ms=network.rtt_ms,
        call=call,
        sent_at=body.sent_at,
        agent_version=body.agent_version,
        network_interface=network.interface,
    )
    test_call = None
    if body.test_call is not None:
        tc = body.test_call
        # The agent's clock may be off: move the time by the offset this heartbeat shows.
        at = tc.at.astimezone(UTC) + timedelta(seconds=offset)
        test_call = TestCall(ok=tc.ok, at=min(at, received_at), audio_packets=tc.audio_packets,
                             video_frames=tc.video_frames, loss=tc.loss, rtt_ms=tc.rtt_ms)
    return Latest(report, test_call)


# -- the monitor ---------------------------------------------------------------------------


@dataclass
class _Live:
    """What this process received from one endpoint."""

    latest: Latest = field(default_factory=Latest)
    # Received time of the newest heartbeat written to the row by this process.
    persisted: datetime | None = None
    test_call_persisted: bool = True
    bucket: Bucket | None = None


@dataclass(frozen=True)
class _Known:
    """The stored state of an endpoint as this process last saw it."""

    state: HealthState
    codes: frozenset[ReasonCode]
    since: datetime


@dataclass(frozen=True)
class BoardEntry:
    """An endpoint's health at the last sweep and its last heartbeat."""

    health: Health
    last_heartbeat: datetime | None


@dataclass(frozen=True)
class Accepted:
    """The answer to an accepted heartbeat."""

    health: Health
    since: datetime
    clock_offset_seconds: float


@dataclass(frozen=True)
class EndpointView:
    """One endpoint as the API shows it: stored state merged with memory, evaluated now."""

    endpoint: EndpointInfo
    health: Health
    since: datetime | None
    latest: Latest
    stream_connected: bool


class HealthMonitor:
    """The health of every endpoint: heartbeats in, states and history out."""

    def __init__(self, settings: Settings, clock: Clock, zone: ZoneInfo) -> None:
        self.thresholds = Thresholds.from_settings(settings)
        self.presence_rules = PresenceRules(
            stale_after=timedelta(seconds=settings.presence_stale_seconds),
            grace=timedelta(seconds=settings.health_stream_grace_seconds),
        )
        self.interval = settings.health_heartbeat_interval_seconds
        self.min_gap = timedelta(seconds=settings.health_heartbeat_min_gap_seconds)
        self.max_bytes = settings.health_heartbeat_max_bytes
        self.persist_every = timedelta(seconds=settings.health_persist_seconds)
        self.samples_kept = timedelta(days=settings.health_samples_days)
        self.clock = clock
        self.zone = zone
        self._database: Database | None = None
        self._bus: EventBus | None = None
        self._live: dict[int, _Live] = {}
        self._known: dict[int, _Known] = {}
        self._presence: dict[int, bool] = {}
        self._roster: list[EndpointInfo] | None = None
        self._rows: store.RowCache = {}
        # The sweep's last evaluation of each endpoint, reused while nothing it depends
        # on changed: (row, report, test call, presence, health, valid until).
        self._memo: dict[int, tuple[Stored | None, Report | None, TestCall | None, bool,
                                    Health, datetime]] = {}
        self._roster_until = 0.0
        self._last_sweep: datetime | None = None
        self._last_accepted: dict[int, datetime] = {}
        self._pending: list[Bucket] = []
        # Endpoints whose change of state or reasons awaits recording: id -> (endpoint, when).
        self._changed: dict[int, tuple[EndpointInfo, datetime]] = {}
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self.accepted = 0
        self.dropped: Counter[str] = Counter()
        # Called with each drop reason (e.g. a Prometheus counter).
        self.drop_listeners: list[Callable[[str], None]] = []
        # Every active endpoint's health as of the last sweep, by code (cheap to read
        # synchronously, e.g. by a metrics collector).
        self.board: dict[str, BoardEntry] = {}

    def bind(self, database: Database, bus: EventBus) -> None:
        self._database, self._bus = database, bus

    @property
    def database(self) -> Database:
        assert self._database is not None, "HealthMonitor used before bind()"
        return self._database

    @property
    def bus(self) -> EventBus:
        assert self._bus is not None, "HealthMonitor used before bind()"
        return self._bus

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1
        for listener in self.drop_listeners:
            try:
                listener(reason)
            except Exception:  # a listener's bug must not fail the request
                log.exception("heartbeat drop listener failed")

    # -- the fast path -----------------------------------------------------------------

    def too_soon(self, endpoint_id: int, now: datetime) -> float | None:
        """Seconds to wait when a heartbeat comes sooner than the minimum gap, else None."""
        last = self._last_accepted.get(endpoint_id)
        if last is None or self.min_gap <= timedelta(0):
            return None
        wait = (last + self.min_gap - now).total_seconds()
        return wait if wait > 0 else None

    async def heartbeat(self, endpoint: EndpointInfo, body: Heartbeat) -> Accepted:
        """Take an accepted heartbeat; writes only when the state or reasons change."""
        now = self.clock.now()
        facts = facts_of(body, now)
        self._last_accepted[endpoint.id] = now
        live = self._live.setdefault(endpoint.id, _Live())
        live.latest = facts.newer(live.latest)
        if facts.test_call is not None:
            live.test_call_persisted = False
        known = self._known.get(endpoint.id)
        observation = Observation(facts.report, self._presence.get(endpoint.id, False),
                                  live.latest.test_call,
                                  known.codes if known else frozenset())
        health = evaluate(observation, now, self.thresholds)
        assert facts.report is not None
        self._add_sample(endpoint.id, live, facts.report, health)
        self.accepted += 1
        since = known.since if known else now
        if known is None or not health.same_as(known.state, known.codes):
            # The request never writes: the recorder task stores the change (batched).
            if known is None or known.state is not health.state:
                since = now
            self._known[endpoint.id] = _Known(health.state, health.codes, since)
            self._mark_changed(endpoint, now)
        return Accepted(health, since, facts.report.clock_offset_seconds)

    def _mark_changed(self, endpoint: EndpointInfo, at: datetime) -> None:
        self._changed.setdefault(endpoint.id, (endpoint, at))
        self._wake.set()

    def _add_sample(self, endpoint_id: int, live: _Live, report: Report, health: Health
                    ) -> None:
        minute = store.minute_of(report.received_at)
        if live.bucket is not None and live.bucket.minute != minute:
            self._queue(live.bucket)
            live.bucket = None
        if live.bucket is None:
            live.bucket = Bucket(endpoint_id, minute)
        live.bucket.add(report, health.state is not HealthState.OK)

    def _queue(self, bucket: Bucket) -> None:
        self._pending.append(bucket)
        if len(self._pending) > MAX_PENDING_BUCKETS:
            del self._pending[: len(self._pending) - MAX_PENDING_BUCKETS]
            log.warning("health: samples pile up (database down?); dropping the oldest")

    # -- the slow path -------------------------------------------------------------------

    async def sweep(self) -> None:
        """Record silent endpoints and presence changes; share the newest figures;
        store finished minutes."""
        now = self.clock.now()
        async with self.database.read() as session:
            full = self._roster is None or time.monotonic() >= self._roster_until
            if full:
                self._roster = await store.active_endpoints(session)
                self._roster_until = time.monotonic() + ROSTER_SECONDS
            assert self._roster is not None
            endpoints = self._roster
            # Between full reads (every ROSTER_SECONDS), only the rows written since the
            # last sweep, with a margin for other processes' clocks.
            since = None if full or self._last_sweep is None else (
                self._last_sweep - SWEEP_OVERLAP)
            rows = await store.load_stored_light(session, self._needs_report, self._rows,
                                                 since)
            self._last_sweep = now
            self._presence = await store.load_presence(session, now, self.presence_rules)
        refresh: list[tuple[int, Latest]] = []
        board: dict[str, BoardEntry] = {}
        for endpoint in endpoints:
            row = rows.get(endpoint.id)
            live = self._live.get(endpoint.id)
            if row is not None:
                self._known[endpoint.id] = _Known(row.state, row.codes, row.since)
            latest = self._merged(live, row)
            health = self._evaluate_memo(endpoint.id, latest, row, now)
            board[endpoint.code] = BoardEntry(
                health, latest.report.received_at if latest.report else None)
            if latest.report is None:
                continue  # never heard of: nothing to record
            if row is None or not health.same_as(row.state, row.codes):
                self._changed.setdefault(endpoint.id, (endpoint, now))
            elif live is not None and self._due(live, row):
                refresh.append((endpoint.id, live.latest))
        self.board = board
        await self.record_changes(refresh)
        await self.flush_samples(now)

    async def record_changes(self, refresh: Sequence[tuple[int, Latest]] = ()) -> None:
        """Store the pending changes of state or reasons, and the newest figures of
        `refresh`, in one transaction (a burst of changes costs one commit)."""
        async with self._write_lock:
            pending, self._changed = self._changed, {}
            if not pending and not refresh:
                return
            now = self.clock.now()
            # What this process writes (memory may move on while it does).
            written = {i: self._live_latest(i) for i in pending} | dict(refresh)
            changes = [store.Change(endpoint, written[endpoint_id], at)
                       for endpoint_id, (endpoint, at) in sorted(pending.items())]
            results: dict[int, store.Recorded] = {}
            # Chunks keep each transaction (and SQLite's write lock) short in a burst.
            chunks = [changes[i:i + RECORD_CHUNK] for i in range(0, len(changes), RECORD_CHUNK)]
            for number, chunk in enumerate(chunks or [[]]):
                try:
                    async with self.database.write() as session:
                        results |= await store.record(session, chunk, now, self.thresholds,
                                                      self.presence_rules, self.bus, self.zone)
                        if number == 0:
                            await store.write_latest(session, refresh, now)
                except BaseException:
                    for change in [c for later in chunks[number:] for c in later]:
                        self._changed.setdefault(change.endpoint.id,
                                                 pending[change.endpoint.id])
                    raise
        for endpoint_id, recorded in results.items():
            self._known[endpoint_id] = _Known(recorded.health.state, recorded.health.codes,
                                              recorded.since)
        for endpoint_id, latest in written.items():
            live = self._live.get(endpoint_id)
            if live is not None and latest.report is not None:
                live.persisted = latest.report.received_at
                live.test_call_persisted = live.latest.test_call is latest.test_call

    async def run_recorder(self) -> None:
        """Record changes soon after heartbeats reveal them (a background task)."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(RECORD_BATCH_SECONDS)  # gather a burst into one transaction
            self._wake.clear()
            try:
                await self.record_changes()
            except Exception:
                log.exception("health: recording changes failed; retrying")
                await asyncio.sleep(1.0)
                self._wake.set()

    def _needs_report(self, endpoint_id: int, last_heartbeat: datetime | None) -> bool:
        """Whether the sweep must read a row's report: this process holds nothing newer."""
        live = self._live.get(endpoint_id)
        mine = live.latest.report if live is not None else None
        return mine is None or (last_heartbeat is not None and last_heartbeat > mine.received_at)

    def _live_latest(self, endpoint_id: int) -> Latest:
        live = self._live.get(endpoint_id)
        return live.latest if live is not None else Latest()

    @staticmethod
    def _merged(live: _Live | None, row: Stored | None) -> Latest:
        mine = live.latest if live is not None else Latest()
        return mine.newer(row.latest) if row is not None else mine

    def _evaluate(self, endpoint_id: int, latest: Latest, row: Stored | None, now: datetime
                  ) -> Health:
        return evaluate(
            Observation(latest.report, self._presence.get(endpoint_id, False), latest.test_call,
                        row.codes if row is not None else frozenset()),
            now, self.thresholds,
        )

    def _evaluate_memo(self, endpoint_id: int, latest: Latest, row: Stored | None,
                       now: datetime) -> Health:
        """`_evaluate`, skipped when the row, the report, the test call and the presence are
        the same objects as at the last sweep and no time limit has passed since."""
        presence = self._presence.get(endpoint_id, False)
        memo = self._memo.get(endpoint_id)
        if (memo is not None and memo[0] is row and memo[1] is latest.report
                and memo[2] is latest.test_call and memo[3] == presence and now < memo[5]):
            return memo[4]
        health = self._evaluate(endpoint_id, latest, row, now)
        self._memo[endpoint_id] = (row, latest.report, latest.test_call, presence, health,
                                   self._valid_until(latest, health, now))
        return health

    def _valid_until(self, latest: Latest, health: Health, now: datetime) -> datetime:
        """When the clock alone may change an evaluation: going silent, a failed test
        call ageing out. (Silent endpoints stay offline until something new arrives.)"""
        until = now + timedelta(days=1)
        report, test_call = latest.report, latest.test_call
        if report is not None and health.state is not HealthState.OFFLINE:
            until = min(until, report.received_at + self.thresholds.offline_after
                        + timedelta(microseconds=1))
        if test_call is not None and not test_call.ok:
            until = min(until, test_call.at + self.thresholds.test_call_max_age
                        + timedelta(microseconds=1))
        return until

    def _due(self, live: _Live, row: Stored) -> bool:
        """Whether this process should write its newest figures to the shared row."""
        report = live.latest.report
        if report is None:
            return False
        if not live.test_call_persisted:
            return True
        if row.last_heartbeat is not None and row.last_heartbeat >= report.received_at:
            return False
        return live.persisted is None or report.received_at - live.persisted >= self.persist_every

    async def flush_samples(self, now: datetime | None = None, *, everything: bool = False
                            ) -> None:
        """Add finished minutes (all of them with `everything`) to `health_samples`."""
        current = store.minute_of(now or self.clock.now())
        for live in self._live.values():
            if live.bucket is not None and (everything or live.bucket.minute < current):
                self._queue(live.bucket)
                live.bucket = None
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        try:
            async with self.database.write() as session:
                await store.add_samples(session, pending)
        except BaseException:
            self._pending[:0] = pending  # kept for the next try
            raise

    async def prune(self) -> int:
        """Delete samples older than `health_samples_days`."""
        async with self.database.write() as session:
            return await store.prune_samples(session, self.clock.now() - self.samples_kept)

    async def close(self) -> None:
        """Write what memory holds (at shutdown)."""
        await self.record_changes()
        await self.flush_samples(everything=True)

    # -- reading ------------------------------------------------------------------------------

    async def views(self, session: Any, endpoints: list[EndpointInfo]) -> list[EndpointView]:
        """The current health of `endpoints`, evaluated now from the rows and memory."""
        now = self.clock.now()
        ids = [e.id for e in endpoints]
        rows = await store.load_stored(session, ids)
        presence = await store.load_presence(session, now, self.presence_rules, ids)
        views = []
        for endpoint in endpoints:
            row = rows.get(endpoint.id)
            latest = self._merged(self._live.get(endpoint.id), row)
            connected = presence.get(endpoint.id, False)
            health = evaluate(
                Observation(latest.report, connected, latest.test_call,
                            row.codes if row is not None else frozenset()),
                now, self.thresholds,
            )
            since: datetime | None
            if row is not None and health.state is row.state:
                since = row.since
            elif health.state is HealthState.OFFLINE:
                since = offline_since(latest.report, self.thresholds)
            else:
                since = now
            views.append(EndpointView(endpoint, health, since, latest, connected))
        return views


MONITOR = web.AppKey("health_monitor", HealthMonitor)


# -- HTTP ------------------------------------------------------------------------------------


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"a heartbeat is at most {limit} bytes")


async def _read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


_DROP_OF_STATUS = {400: "malformed", 401: "unauthorized", 403: "forbidden", 413: "too_large",
                   415: "malformed", 422: "invalid", 429: "rate_limited"}


async def post_heartbeat(request: web.Request) -> web.Response:
    """POST /api/v1/endpoints/{code}/heartbeat: the endpoint's agent reports."""
    monitor = request.app[MONITOR]
    try:
        principal = require_principal(request)
        code = request.match_info["code"]
        _check_sender(principal, code)
        _check_rate(monitor, principal, request.app[CLOCK].now())
        raw = await _read_limited(request, monitor.max_bytes)
        answer = await _accept(request, monitor, principal, code, raw)
        return render(HeartbeatAnswer.model_validate(answer))
    except ApiError as exc:
        monitor.drop(_DROP_OF_STATUS.get(exc.status, "other"))
        raise


async def stream_heartbeat(request: web.Request, principal: Principal, raw: str
                           ) -> dict[str, Any]:
    """An agent's heartbeat on its event stream: `{"type": "heartbeat", "body": {...}}`
    (the body is the POST's). Holding the stream already proves the token: no request,
    no lookup. The answer is short (no times to format): `{"type": "heartbeat.ok",
    "state", "reasons", "clock_offset_seconds", "clock_skew", "interval_seconds"}`."""
    monitor = request.app[MONITOR]
    try:
        code = principal.endpoint_code or ""
        _check_sender(principal, code)
        now = request.app[CLOCK].now()
        _check_rate(monitor, principal, now)
        if len(raw) > monitor.max_bytes:
            raise _too_large(monitor.max_bytes)
        body = parse_model(raw, StreamHeartbeat).body
        assert principal.endpoint_id is not None
        accepted = await monitor.heartbeat(EndpointInfo(principal.endpoint_id, code, "", ""),
                                           body)
        return {"type": "heartbeat.ok",
                **_answer(monitor, accepted, request.app[ZONE], now)}
    except ApiError as exc:
        monitor.drop(_DROP_OF_STATUS.get(exc.status, "other"))
        raise


def _check_sender(principal: Principal, code: str) -> None:
    if principal.scope is not TokenScope.AGENT or principal.endpoint_id is None:
        raise forbidden("heartbeats are sent with the endpoint's agent token")
    if principal.endpoint_code != code:
        raise forbidden(f"this agent token belongs to {principal.endpoint_code}, not {code}")


def _check_rate(monitor: HealthMonitor, principal: Principal, now: datetime) -> None:
    assert principal.endpoint_id is not None
    wait = monitor.too_soon(principal.endpoint_id, now)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise ApiError(429, "rate_limited", "heartbeats come too often for this endpoint",
                       {"retry_after_seconds": seconds}, headers={"Retry-After": str(seconds)})


async def _accept(request: web.Request, monitor: HealthMonitor, principal: Principal,
                  code: str, raw: bytes) -> dict[str, Any]:
    """Parse, validate and take in a heartbeat; the answer's body."""
    assert principal.endpoint_id is not None
    body = parse_model(raw, Heartbeat)
    endpoint = EndpointInfo(principal.endpoint_id, code, "", "")
    accepted = await monitor.heartbeat(endpoint, body)
    zone = request.app[ZONE]
    now = monitor.clock.now()
    return {"endpoint": code, **_answer(monitor, accepted, zone, now),
            "since": to_local_iso(accepted.since, zone),
            "server_time": to_local_iso(now, zone)}


def _answer(monitor: HealthMonitor, accepted: Accepted, zone: ZoneInfo, now: datetime
            ) -> dict[str, Any]:
    """What both answers to an accepted heartbeat (POST and event stream) say."""
    return {
        "state": accepted.health.state.value,
        "reasons": [r.to_json(zone, now) for r in accepted.health.reasons],
        "clock_offset_seconds": round(accepted.clock_offset_seconds, 3),
        "clock_skew": ReasonCode.CLOCK_SKEW in accepted.health.codes,
        "interval_seconds": monitor.interval,
    }
