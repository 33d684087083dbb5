"""The health monitor: heartbeats in (the fast path), the sweep and the recorder behind
it, and the current health of endpoints out.

An endpoint's agent reports every `health_heartbeat_interval_seconds` (5 s)
with its agent token. The fast path is memory only: the report replaces the
endpoint's latest view, is added to the current minute's sample, and the
model is evaluated against the state last stored. Only when the state or
its reasons change is a write due, done by the recorder soon after (one
transaction: the transition, the row, an `endpoint.health` event).

`HealthMonitor.sweep`, every `health_sweep_seconds` (2 s), is the slow path
(`sweep.py`). The writes are the recorder's (`recorder.py`); the memory the
three share is `state.py`'s; the body on the wire is `wire.py`'s and its HTTP
handlers `heartbeat_api.py`'s.

Several processes: heartbeats may land on any of them. Each keeps the
latest view of what it received; the `endpoint_health` row is the shared
truth, merged with memory by "the newest heartbeat wins". A row lags at
most persist + sweep seconds behind (settings refuse a configuration where
that reaches `health_offline_after_seconds`), so no process takes a live
endpoint for silent. The flood limit is per process."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from monitoring.health import store
from monitoring.health.latest import Latest
from monitoring.health.model import (
    Health,
    HealthState,
    Observation,
    Report,
    Thresholds,
    evaluate,
    offline_since,
)
from monitoring.health.recorder import ChangeRecorder
from monitoring.health.samples import Bucket, minute_of
from monitoring.health.state import Known, Live, MonitorState
from monitoring.health.store import EndpointInfo, PresenceRules
from monitoring.health.sweep import BoardEntry, Sweeper
from monitoring.health.wire import AnyHeartbeat, Source, facts_of, source_of
from vcbridge.core.clock import Clock
from vcbridge.core.db.engine import Database
from vcbridge.core.events import EventBus
from vcbridge.core.settings import Settings

log = logging.getLogger(__name__)


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
        self.clock = clock
        self.zone = zone
        self._state = MonitorState()
        self.recorder = ChangeRecorder(
            self._state, clock, zone, self.thresholds, self.presence_rules,
            samples_kept=timedelta(days=settings.health_samples_days))
        self.sweeper = Sweeper(self._state, self.recorder,
                               persist_every=timedelta(seconds=settings.health_persist_seconds))
        self._last_accepted: dict[tuple[int, Source], datetime] = {}
        self.accepted = 0
        self.dropped: Counter[str] = Counter()
        # Called with each drop reason (e.g. a Prometheus counter).
        self.drop_listeners: list[Callable[[str], None]] = []

    def bind(self, database: Database, bus: EventBus) -> None:
        """Give the monitor its database and event bus (when the app starts)."""
        self.recorder.bind(database, bus)

    @property
    def board(self) -> dict[str, BoardEntry]:
        """Every active endpoint's health as of the last sweep, by code."""
        return self.sweeper.board

    def drop(self, reason: str) -> None:
        """Count a refused heartbeat (and tell the listeners)."""
        self.dropped[reason] += 1
        for listener in self.drop_listeners:
            try:
                listener(reason)
            except Exception:  # a listener's bug must not fail the request
                log.exception("heartbeat drop listener failed")

    # -- the fast path -----------------------------------------------------------------

    def too_soon(self, endpoint_id: int, now: datetime, source: Source = "agent"
                 ) -> float | None:
        """Seconds to wait when a heartbeat comes sooner than the minimum gap after the
        last one of the same sender (the agent, the page), else None."""
        last = self._last_accepted.get((endpoint_id, source))
        if last is None or self.min_gap <= timedelta(0):
            return None
        wait = (last + self.min_gap - now).total_seconds()
        return wait if wait > 0 else None

    async def heartbeat(self, endpoint: EndpointInfo, body: AnyHeartbeat) -> Accepted:
        """Take an accepted heartbeat; writes only when the state or reasons change."""
        state = self._state
        now = self.clock.now()
        facts = facts_of(body, now)
        self._last_accepted[(endpoint.id, source_of(body))] = now
        live = state.live.setdefault(endpoint.id, Live())
        facts = self._keep_other_call(facts, live.latest.report)
        live.latest = facts.newer(live.latest)
        if facts.test_call is not None:
            live.test_call_persisted = False
        known = state.known.get(endpoint.id)
        observation = Observation(facts.report, state.presence.get(endpoint.id, False),
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
            state.known[endpoint.id] = Known(health.state, health.codes, since)
            state.mark_changed(endpoint, now)
        return Accepted(health, since, facts.report.clock_offset_seconds)

    def _keep_other_call(self, facts: Latest, previous: Report | None) -> Latest:
        """A report without call figures keeps the other sender's recent ones: when the
        operator's page has taken the agent's seat, the agent goes on reporting its machine
        (in no call) while the page reports the call; neither erases the other."""
        report = facts.report
        if (report is None or report.call is not None or previous is None
                or previous.call is None or previous.call.source != "browser"
                or report.received_at - previous.received_at
                > timedelta(seconds=2 * self.interval)):
            return facts
        return Latest(replace(report, call=previous.call), facts.test_call)

    def _add_sample(self, endpoint_id: int, live: Live, report: Report, health: Health
                    ) -> None:
        minute = minute_of(report.received_at)
        if live.bucket is not None and live.bucket.minute != minute:
            self._state.queue(live.bucket)
            live.bucket = None
        if live.bucket is None:
            live.bucket = Bucket(endpoint_id, minute)
        live.bucket.add(report, health.state is not HealthState.OK)

    # -- the slow path and the writes (sweep.py, recorder.py) ---------------------------

    async def sweep(self) -> None:
        """One sweep (see sweep.py)."""
        await self.sweeper.sweep()

    async def record_changes(self, refresh: Sequence[tuple[int, Latest]] = ()) -> None:
        """Store the pending changes of state or reasons now (see recorder.py)."""
        await self.recorder.record_changes(refresh)

    async def run_recorder(self) -> None:
        """Record changes soon after heartbeats reveal them (a background task)."""
        await self.recorder.run()

    async def flush_samples(self, now: datetime | None = None, *, everything: bool = False
                            ) -> None:
        """Add finished minutes (all of them with `everything`) to `health_samples`."""
        await self.recorder.flush_samples(now, everything=everything)

    async def prune(self) -> int:
        """Delete samples older than `health_samples_days`."""
        return await self.recorder.prune()

    async def close(self) -> None:
        """Write what memory holds (at shutdown)."""
        await self.recorder.close()

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
            latest = self._state.merged(endpoint.id, row)
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
