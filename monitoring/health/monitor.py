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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from monitoring.health import bridge_views, store
from monitoring.health.latest import Latest
from monitoring.health.model import (
    QUALITY_CODES,
    BridgeView,
    CallFigures,
    Health,
    HealthState,
    Observation,
    QualityHold,
    ReasonCode,
    Report,
    Thresholds,
    evaluate,
    judge_quality,
    offline_since,
    sip_presence,
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
    # The bridge's view of the endpoint's media, when fresh.
    bridge: BridgeView | None = None


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
        self.bridge_max_age = bridge_views.max_age(settings.health_heartbeat_interval_seconds,
                                                   settings.health_sweep_seconds)
        self.sweeper = Sweeper(self._state, self.recorder,
                               persist_every=timedelta(seconds=settings.health_persist_seconds),
                               bridge_max_age=self.bridge_max_age)
        self._last_accepted: dict[tuple[int, Source], datetime] = {}
        self.accepted = 0
        self.dropped: Counter[str] = Counter()
        # Called with each drop reason (e.g. a Prometheus counter).
        self.drop_listeners: list[Callable[[str], None]] = []
        # Called with each accepted heartbeat's endpoint code and report (the site's view
        # of its call, for the metrics).
        self.report_listeners: list[Callable[[str, Report], None]] = []

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
        now = self.clock.now()
        return self._accept(endpoint, facts_of(body, now), source_of(body), now)

    async def sip_answered(self, endpoint: EndpointInfo, rtt_ms: float | None) -> Accepted:
        """A SIP room system answered the bridge's OPTIONS ping: its heartbeat (`sip`
        source). Its silence makes it offline as an agent's does."""
        now = self.clock.now()
        return self._accept(endpoint, Latest(sip_presence(now, rtt_ms), None), "sip", now)

    def _accept(self, endpoint: EndpointInfo, facts: Latest, source: Source, now: datetime
                ) -> Accepted:
        state = self._state
        self._last_accepted[(endpoint.id, source)] = now
        live = state.live.setdefault(endpoint.id, Live())
        known = state.known.get(endpoint.id)
        assert facts.report is not None
        measured = facts.report.call is not None
        facts = self._keep_other_call(facts, live.latest.report)
        assert facts.report is not None
        # One interval's quality verdict, on the worse of the site's figures and the
        # bridge's view of the same interval, with the memory of the intervals before. A
        # call kept from the other sender is no new interval of the call.
        quality = judge_quality(
            facts.report,
            bridge_views.fresh(state.bridge.get(endpoint.id), now, self.bridge_max_age),
            self._quality_before(live, known, now), self.thresholds,
            call_measured=measured or facts.report.call is None)
        facts = Latest(replace(facts.report, quality=quality), facts.test_call)
        live.latest = facts.newer(live.latest)
        if facts.test_call is not None:
            live.test_call_persisted = False
        observation = Observation(facts.report, state.presence.get(endpoint.id, False),
                                  live.latest.test_call,
                                  known.codes if known else frozenset())
        health = evaluate(observation, now, self.thresholds)
        assert facts.report is not None
        self._add_sample(endpoint.id, live, facts.report, health)
        self.accepted += 1
        for listener in self.report_listeners:
            try:
                listener(endpoint.code, facts.report)
            except Exception:  # a listener's bug must not fail the heartbeat
                log.exception("heartbeat report listener failed")
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

    def _quality_before(self, live: Live, known: Known | None, now: datetime
                        ) -> QualityHold | frozenset[ReasonCode]:
        """The verdict of the interval before: this process's last report of the endpoint
        when it is recent, else the codes last stored (held until the intervals clear
        them: a process that just took the endpoint over does not clear at once)."""
        report = live.latest.report
        if (report is not None and report.quality is not None
                and now - report.received_at <= self.thresholds.offline_after):
            return report.quality
        if known is None:
            return frozenset()
        return QualityHold(good=tuple((code, 0) for code in sorted(known.codes & QUALITY_CODES)))

    def _bucket(self, endpoint_id: int, live: Live, at: datetime) -> Bucket:
        """The endpoint's bucket of the minute of `at` (the one before is queued)."""
        minute = minute_of(at)
        if live.bucket is not None and live.bucket.minute != minute:
            self._state.queue(live.bucket)
            live.bucket = None
        if live.bucket is None:
            live.bucket = Bucket(endpoint_id, minute)
        return live.bucket

    def _add_sample(self, endpoint_id: int, live: Live, report: Report, health: Health
                    ) -> None:
        self._bucket(endpoint_id, live, report.received_at).add(
            report, health.state is not HealthState.OK)

    # -- the bridge's view -----------------------------------------------------------------

    def bridge_media(self, views: Mapping[str, CallFigures | None]) -> None:
        """The bridge's view of the sites connected to this process's rooms, one sampling
        window (endpoint code -> figures; None: the site left its room). Kept for the
        health model, added to the minute's samples, shared with the other processes by
        the sweep."""
        state = self._state
        now = self.clock.now()
        for code, figures in views.items():
            endpoint_id = state.ids.get(code)
            if endpoint_id is None:
                continue  # not in the roster (yet): the next window will do
            view = BridgeView(now, figures)
            state.take_bridge(endpoint_id, view)
            state.bridge_unsaved[endpoint_id] = view
            if figures is not None:
                live = state.live.setdefault(endpoint_id, Live())
                self._bucket(endpoint_id, live, now).add_bridge(figures)

    def bridge_view(self, endpoint_id: int, now: datetime) -> BridgeView | None:
        """The endpoint's bridge view when fresh enough to speak for its call."""
        view = self._state.bridge.get(endpoint_id)
        if bridge_views.fresh(view, now, self.bridge_max_age) is None:
            return None
        return view

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
            views.append(EndpointView(endpoint, health, since, latest, connected,
                                      self.bridge_view(endpoint.id, now)))
        return views


MONITOR = web.AppKey("health_monitor", HealthMonitor)
