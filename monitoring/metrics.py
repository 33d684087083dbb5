"""Prometheus metrics of one vcbridge process: what IT staff scrape into their own Prometheus.

`Metrics` owns its own `CollectorRegistry` (no module-level global registry:
every app, and every test app, has its own) with the process collectors
(`process_*`, `python_gc_*`, `python_info`) and these families:

Per endpoint (label `endpoint` = the roster code; every active endpoint of
the roster has every series from startup, so all 31 show even with no data),
all gauges:

- `vcbridge_endpoint_up`: 1 when reachable (health ok or degraded), else 0.
- `vcbridge_endpoint_health_state{state}`: a state set. `state` takes the
  three values ok, degraded, offline; the current state's series is 1, the
  other two are 0 (so `== 1` selects the state, and a Grafana tile can map it).
- `vcbridge_endpoint_ready`: 1 when ready for its next conference.
- `vcbridge_endpoint_last_heartbeat_timestamp_seconds`: Unix time it was last
  heard from (NaN: never).
- `vcbridge_endpoint_round_trip_time_seconds`, `vcbridge_endpoint_jitter_seconds`:
  media round-trip time and jitter.
- `vcbridge_endpoint_packet_loss_ratio`: 0..1 over the last sampling window.
- `vcbridge_endpoint_receive_bytes_per_second`,
  `vcbridge_endpoint_send_bytes_per_second`: the media bit rate the bridge
  receives from it and sends to it, in bytes per second: bytes are
  Prometheus' base unit of data (`promtool check metrics` refuses `bits`);
  dashboards multiply by 8 to show bit/s.
- `vcbridge_endpoint_frames_per_second`: camera frames the bridge receives.
- `vcbridge_endpoint_in_conference`: 1 while joined to an open or live conference.
- `vcbridge_endpoint_next_conference_start_timestamp_seconds`: Unix start time
  of its next scheduled or open conference not yet started (NaN: none). The
  "not ready 15 minutes before its conference" alert compares it with `time()`.

A quality gauge with no current measurement (the endpoint is not in a
conference, or nothing measures that value yet) is NaN: Prometheus keeps
the series, comparisons with NaN are false so no alert fires on it, and
Grafana shows a gap instead of a misleading 0.

Service-wide:

- `vcbridge_conferences{state}` gauge, state scheduled/open/live: counts from
  the database (a custom collector reading the refresher's cached counts).
- `vcbridge_participants_connected` gauge: endpoints joined to open or live
  conferences.
- `vcbridge_join_duration_seconds` histogram: first invitation to joined.
- `vcbridge_scheduler_transition_lateness_seconds{transition}` histogram,
  transition open/live/warn/end: how late the lifecycle ran it (`data.late_ms`).
- `vcbridge_invitations_total` counter: every invitation sent, redials included;
  `vcbridge_redials_total` counter: those that were redials.
- `vcbridge_scheduler_leader` gauge: 1 when this process runs the scheduler.
- `vcbridge_http_requests_total{route,method,status}` counter and
  `vcbridge_http_request_duration_seconds{route,method}` histogram.
- `vcbridge_heartbeats_dropped_total{reason}` counter (`HEARTBEAT_DROP_REASONS`).
- `vcbridge_login_failures_total` counter: wrong user name or password (401);
  `vcbridge_logins_refused_total{reason}` counter, reason backoff/address: logins
  refused by the login limiter (429). Per process, read from the core's
  `LoginStats` at scrape time (`watch_logins`).

No label ever holds an unbounded value (a conference title or id, a user, a
raw URL): `endpoint` only takes roster codes (anything else is ignored),
`route` the router's canonical paths, and every other label a fixed set.

Several processes: every process exports the database-derived series
(per-endpoint status, next conference, in-conference, conference counts)
with the same values, so queries aggregate them with `max by (endpoint)`.
Event-derived counters and histograms (lateness, invitations, redials, join
durations) are recorded only by the process that is the scheduler leader
when the event arrives: every process sees every event on the bus, and
counting in all of them would multiply the totals by the number of
processes. Around a leader change a few events may be missed. HTTP metrics
and media quality are per process (the process that served the request or
hosts the room).

How the parts feed it:
- `MetricsRecorder` follows the event bus (transitions, invitations, joins);
- `StateRefresher` reads the database every 10 s (roster, conference counts,
  presence, next conferences, roll call) and caches it: a scrape never
  queries the database;
- `MediaSampler` turns cumulative media counters (from the bridge, through a
  `MediaSource` given by the composition root) into rates and ratios;
- the health model and heartbeats (later work) plug in as a `StatusModel`
  and through `set_endpoint_status`, `set_quality`, `heartbeat_dropped`."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from monitoring.endpoint_gauges import EndpointGauge, render_all
from vcbridge.core.auth.login_limiter import LoginStats, Reason
from vcbridge.core.clock import Clock
from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import (
    ACTIVE_STATUSES,
    RUNNING_STATUSES,
    Attendance,
    Conference,
    ConferenceStatus,
    Endpoint,
    EndpointPresence,
    Participant,
)
from vcbridge.core.events import BusEvent, EventBus
from vcbridge.core.presence import online

log = logging.getLogger(__name__)

NAN = math.nan

CONFERENCE_STATES = tuple(s.value for s in ACTIVE_STATUSES)  # scheduled, open, live
# The lifecycle events that carry `data.late_ms`, and their `transition` label.
TRANSITIONS: Mapping[str, str] = {
    "conference.opened": "open",
    "conference.live": "live",
    "conference.ending_soon": "warn",
    "conference.ended": "end",
}
# Why a heartbeat was refused (the reasons of monitoring/heartbeats.py); any other is "other".
HEARTBEAT_DROP_REASONS = (
    "unauthorized", "forbidden", "rate_limited", "too_large", "malformed", "invalid", "other",
)
# The attendance state of an endpoint in the call (scheduler.connect_policy.ConnectState.JOINED;
# the column is core schema, the value is checked against the enum by the tests).
JOINED = "joined"
# The reason of a first invitation; any other reason (no_answer, dropped, absent) is a redial.
FIRST_CALL_REASON = "invited"

LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                    900.0, 3600.0)
JOIN_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Health(enum.StrEnum):
    """An endpoint's health as `vcbridge_endpoint_health_state` shows it."""

    OK = "ok"
    DEGRADED = "degraded"
    OFFLINE = "offline"


@dataclass(frozen=True)
class EndpointFacts:
    """What the refresher knows of one endpoint: the input of a `StatusModel`."""

    code: str
    online: bool  # presence: its agent or console holds the event stream open
    last_seen: datetime | None
    in_conference: bool
    next_conference_start: datetime | None


@dataclass(frozen=True)
class EndpointStatus:
    """An endpoint's health, readiness and last sign of life."""

    health: Health
    ready: bool
    last_heartbeat: datetime | None = None


# Decides an endpoint's status from the facts; the health model will supply its own.
StatusModel = Callable[[EndpointFacts], EndpointStatus]


def presence_status(facts: EndpointFacts) -> EndpointStatus:
    """The status until the health model exists: on line (presence) is ok and ready.

    `degraded` is never given here: deciding it (loss, heartbeats, pre-flight
    checks) is the health model's job."""
    if facts.online:
        return EndpointStatus(Health.OK, True, facts.last_seen)
    return EndpointStatus(Health.OFFLINE, False, facts.last_seen)


@dataclass(frozen=True)
class Quality:
    """Call-quality values of one endpoint; None leaves a gauge as it is, NaN clears it."""

    round_trip_time_seconds: float | None = None
    jitter_seconds: float | None = None
    packet_loss_ratio: float | None = None
    receive_bytes_per_second: float | None = None
    send_bytes_per_second: float | None = None
    frames_per_second: float | None = None


QUALITY_FIELDS = tuple(f.name for f in fields(Quality))


@dataclass(frozen=True)
class MediaCounters:
    """One endpoint's media as this process sees it. Counters are cumulative (a
    decrease means they restarted); None: not measured by the source."""

    packets_received: int | None = None
    packets_lost: int | None = None
    bytes_received: int | None = None
    bytes_sent: int | None = None
    frames_received: int | None = None
    round_trip_time_seconds: float | None = None  # latest value
    jitter_seconds: float | None = None  # latest value


# Endpoint code -> its media counters; only endpoints connected to a room of this process.
MediaSource = Callable[[], Mapping[str, MediaCounters]]


def _delta(new: int | None, old: int | None) -> int | None:
    if new is None or old is None or new < old:
        return None
    return new - old


def quality_between(
    previous: MediaCounters | None, current: MediaCounters, seconds: float
) -> Quality:
    """The quality over the window from `previous` to `current` (`seconds` long).

    Without a previous sample (or after a counter restart) the rates are left
    alone; a window with no packets has no loss ratio (NaN)."""
    loss: float | None = None
    receive: float | None = None
    send: float | None = None
    fps: float | None = None
    if previous is not None and seconds > 0:
        received = _delta(current.packets_received, previous.packets_received)
        lost = _delta(current.packets_lost, previous.packets_lost)
        if received is not None and lost is not None:
            loss = lost / (received + lost) if received + lost else NAN
        bytes_in = _delta(current.bytes_received, previous.bytes_received)
        bytes_out = _delta(current.bytes_sent, previous.bytes_sent)
        frames = _delta(current.frames_received, previous.frames_received)
        receive = None if bytes_in is None else bytes_in / seconds
        send = None if bytes_out is None else bytes_out / seconds
        fps = None if frames is None else frames / seconds
    return Quality(
        round_trip_time_seconds=current.round_trip_time_seconds,
        jitter_seconds=current.jitter_seconds,
        packet_loss_ratio=loss,
        receive_bytes_per_second=receive,
        send_bytes_per_second=send,
        frames_per_second=fps,
    )


def _timestamp(at: datetime | None) -> float:
    return NAN if at is None else at.timestamp()


class _ConferenceCounts(Collector):
    """`vcbridge_conferences`, collected at scrape time from the refresher's cached counts.

    Counts older than their validity (the refresher stopped succeeding) are
    not exported: an absent series says "unknown", a stale one would lie."""

    def __init__(self) -> None:
        self.counts: dict[str, int] | None = None
        self.valid_until = 0.0

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "vcbridge_conferences",
            "Conferences by lifecycle state (from the database, refreshed every few seconds).",
            labels=["state"],
        )

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        if self.counts is not None and time.monotonic() <= self.valid_until:
            for state in CONFERENCE_STATES:
                family.add_metric([state], self.counts.get(state, 0))
        return [family]


class _LoginCounts(Collector):
    """The login counters, collected at scrape time from the core's login limiter."""

    def __init__(self, stats: LoginStats) -> None:
        self.stats = stats

    def describe(self) -> Iterable[Metric]:
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        failures = CounterMetricFamily(
            "vcbridge_login_failures",
            "Failed logins (wrong user name or password, or an inactive account).")
        failures.add_metric([], self.stats.failures)
        refused = CounterMetricFamily(
            "vcbridge_logins_refused",
            "Logins refused by the login limiter (429), by reason: backoff (the user name "
            "from that address) or address (that address, any user names).",
            labels=["reason"])
        for reason in Reason:
            refused.add_metric([reason.value], self.stats.refused.get(reason, 0))
        return [failures, refused]


class Metrics:
    """The metric families of one process and the only code that writes them."""

    def __init__(self, *, is_leader: Callable[[], bool] = lambda: False) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self._is_leader = is_leader
        self._endpoints: set[str] = set()
        # Endpoint code -> the conference it is joined to.
        self._joined: dict[str, int] = {}

        # Per-endpoint families, rendered by `render` after the registry's (fast path).
        self._endpoint_gauges: list[EndpointGauge] = []

        def endpoint_gauge(name: str, doc: str, extra_label: str | None = None
                           ) -> EndpointGauge:
            gauge = EndpointGauge(f"vcbridge_endpoint_{name}", doc, extra_label)
            self._endpoint_gauges.append(gauge)
            return gauge

        self.up = endpoint_gauge("up", "1 when the endpoint is reachable (health ok or degraded).")
        self.health_state = endpoint_gauge(
            "health_state",
            "Endpoint health as a state set: 1 for the current state (ok, degraded, offline), "
            "0 for the others.", extra_label="state")
        self.ready = endpoint_gauge(
            "ready", "1 when the endpoint is ready for its next conference.")
        self.last_heartbeat = endpoint_gauge(
            "last_heartbeat_timestamp_seconds",
            "Unix time the endpoint was last heard from (NaN: never).")
        self.in_conference = endpoint_gauge(
            "in_conference", "1 while the endpoint is joined to an open or live conference.")
        self.next_conference_start = endpoint_gauge(
            "next_conference_start_timestamp_seconds",
            "Unix start time of the endpoint's next scheduled or open conference (NaN: none).")
        self.quality: dict[str, EndpointGauge] = {
            "round_trip_time_seconds": endpoint_gauge(
                "round_trip_time_seconds", "Media round-trip time (NaN: not measured now)."),
            "jitter_seconds": endpoint_gauge(
                "jitter_seconds", "Media inter-arrival jitter (NaN: not measured now)."),
            "packet_loss_ratio": endpoint_gauge(
                "packet_loss_ratio",
                "Share of the endpoint's packets lost over the last sampling window, 0 to 1."),
            "receive_bytes_per_second": endpoint_gauge(
                "receive_bytes_per_second",
                "Media bytes per second the bridge receives from the endpoint."),
            "send_bytes_per_second": endpoint_gauge(
                "send_bytes_per_second",
                "Media bytes per second the bridge sends to the endpoint."),
            "frames_per_second": endpoint_gauge(
                "frames_per_second", "Camera frames per second the bridge receives."),
        }
        assert tuple(self.quality) == QUALITY_FIELDS

        self._conference_counts = _ConferenceCounts()
        registry.register(self._conference_counts)
        self.participants_connected = Gauge(
            "vcbridge_participants_connected",
            "Endpoints joined to open or live conferences.", registry=registry)
        self.participants_connected.set_function(lambda: len(self._joined))
        self.join_duration = Histogram(
            "vcbridge_join_duration_seconds",
            "Time from an endpoint's first invitation to its joining the conference.",
            buckets=JOIN_BUCKETS, registry=registry)
        self.lateness = Histogram(
            "vcbridge_scheduler_transition_lateness_seconds",
            "How late a lifecycle transition ran after its due time.",
            ["transition"], buckets=LATENESS_BUCKETS, registry=registry)
        for transition in TRANSITIONS.values():
            self.lateness.labels(transition)
        self.invitations = Counter(
            "vcbridge_invitations", "Invitations sent to endpoints, redials included.",
            registry=registry)
        self.redials = Counter(
            "vcbridge_redials",
            "Invitations that were redials (after no answer, a drop, or absence).",
            registry=registry)
        self.leader = Gauge(
            "vcbridge_scheduler_leader",
            "1 when this process runs the lifecycle scheduler.", registry=registry)
        self.leader.set_function(lambda: 1.0 if self._is_leader() else 0.0)
        self.http_requests = Counter(
            "vcbridge_http_requests", "HTTP requests answered, by canonical route.",
            ["route", "method", "status"], registry=registry)
        self.http_duration = Histogram(
            "vcbridge_http_request_duration_seconds",
            "Time to answer an HTTP request (WebSocket streams excluded).",
            ["route", "method"], buckets=HTTP_BUCKETS, registry=registry)
        self.heartbeats_dropped = Counter(
            "vcbridge_heartbeats_dropped", "Endpoint heartbeats refused, by reason.",
            ["reason"], registry=registry)
        for reason in HEARTBEAT_DROP_REASONS:
            self.heartbeats_dropped.labels(reason)

    # -- exposition -------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of every family."""
        return generate_latest(self.registry) + render_all(self._endpoint_gauges)

    # -- the roster ---------------------------------------------------------------

    @property
    def endpoints(self) -> frozenset[str]:
        return frozenset(self._endpoints)

    def is_leader(self) -> bool:
        """Whether this process records event-derived counters (see the module docstring)."""
        return self._is_leader()

    def set_roster(self, codes: Iterable[str]) -> None:
        """Export every endpoint of `codes` (new ones as offline, no data) and drop the
        series of endpoints no longer active."""
        wanted = set(codes)
        for code in sorted(wanted - self._endpoints):
            self._endpoints.add(code)
            self.set_endpoint_status(code, EndpointStatus(Health.OFFLINE, False))
            self.in_conference.set(code, 1 if code in self._joined else 0)
            self.next_conference_start.set(code, NAN)
            self.clear_quality(code)
        for code in sorted(self._endpoints - wanted):
            self._endpoints.discard(code)
            self._joined.pop(code, None)
            for gauge in self._endpoint_gauges:
                gauge.remove(code)

    # -- per-endpoint state -------------------------------------------------------

    def set_endpoint_status(self, code: str, status: EndpointStatus) -> None:
        if code not in self._endpoints:
            return
        self.up.set(code, 0 if status.health is Health.OFFLINE else 1)
        for state in Health:
            self.health_state.set(code, 1 if state is status.health else 0, state.value)
        self.ready.set(code, 1 if status.ready else 0)
        self.last_heartbeat.set(code, _timestamp(status.last_heartbeat))

    def set_next_conference_start(self, code: str, start: datetime | None) -> None:
        if code in self._endpoints:
            self.next_conference_start.set(code, _timestamp(start))

    def set_quality(self, code: str, quality: Quality) -> None:
        """Set the gauges of the values `quality` gives (None leaves a gauge as it is)."""
        if code not in self._endpoints:
            return
        for name, gauge in self.quality.items():
            value = getattr(quality, name)
            if value is not None:
                gauge.set(code, value)

    def clear_quality(self, code: str) -> None:
        """No current measurement of `code` (it left the call)."""
        if code in self._endpoints:
            for gauge in self.quality.values():
                gauge.set(code, NAN)

    def joined(self, code: str, conference_id: int) -> None:
        if code in self._endpoints:
            self._joined[code] = conference_id
            self.in_conference.set(code, 1)

    def not_joined(self, code: str, conference_id: int | None = None) -> None:
        """`code` left (or dropped from) `conference_id` (None: from whatever conference)."""
        if code not in self._endpoints:
            return
        if conference_id is None or self._joined.get(code) == conference_id:
            self._joined.pop(code, None)
            self.in_conference.set(code, 0)

    def conference_closed(self, conference_id: int) -> None:
        for code in [c for c, conf in self._joined.items() if conf == conference_id]:
            self.not_joined(code, conference_id)

    def set_joined(self, joined: Mapping[str, int]) -> None:
        """Replace who is joined where (the roll call as the database has it)."""
        for code in list(self._joined):
            if code not in joined:
                self.not_joined(code)
        for code, conference_id in joined.items():
            self.joined(code, conference_id)

    # -- service-wide ---------------------------------------------------------------

    def set_conference_counts(self, counts: Mapping[str, int], valid_for: float) -> None:
        """Counts by state (scheduled, open, live), exported for `valid_for` seconds."""
        self._conference_counts.counts = {s: int(counts.get(s, 0)) for s in CONFERENCE_STATES}
        self._conference_counts.valid_until = time.monotonic() + valid_for

    def observe_lateness(self, transition: str, seconds: float) -> None:
        self.lateness.labels(transition).observe(max(seconds, 0.0))

    def observe_invitation(self, redial: bool) -> None:
        self.invitations.inc()
        if redial:
            self.redials.inc()

    def observe_join(self, seconds: float) -> None:
        self.join_duration.observe(max(seconds, 0.0))

    def observe_http(self, route: str, method: str, status: int, seconds: float | None) -> None:
        """One answered request; `seconds` None leaves it out of the duration (WebSocket)."""
        self.http_requests.labels(route, method, str(status)).inc()
        if seconds is not None:
            self.http_duration.labels(route, method).observe(seconds)

    def watch_logins(self, stats: LoginStats) -> None:
        """Export the login counters of the core's login limiter."""
        self.registry.register(_LoginCounts(stats))

    def heartbeat_dropped(self, reason: str) -> None:
        self.heartbeats_dropped.labels(
            reason if reason in HEARTBEAT_DROP_REASONS else "other").inc()


METRICS = web.AppKey("metrics", Metrics)


# -- the event bus ---------------------------------------------------------------------


class MetricsRecorder:
    """Follows the event bus and records what the events say.

    Joined/dropped/left/ended update who is in a conference in every
    process; counters and histograms only on the scheduler leader (see the
    module docstring). Join durations need the time of the first invitation
    of each (conference, endpoint) until it joins: that map is bounded
    (`max_pending`, oldest forgotten first) and emptied when a conference
    ends. An invitation after a join (a redial after a drop) starts a new
    wait, so a rejoin is measured from its first redial."""

    def __init__(self, metrics: Metrics, bus: EventBus, *, max_pending: int = 4096) -> None:
        self._metrics = metrics
        self._bus = bus
        self._max_pending = max_pending
        self._invited: OrderedDict[tuple[int, str], datetime] = OrderedDict()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """How many first invitations await their join."""
        return len(self._invited)

    async def start(self) -> None:
        """Subscribe (returns once subscribed, so no later event is missed)."""
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._follow(ready), name="metrics-recorder")
        await ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self, ready: asyncio.Event) -> None:
        while True:
            async with self._bus.subscribe() as subscription:
                ready.set()
                while (event := await subscription.queue.get()) is not None:
                    try:
                        self.handle(event)
                    except Exception:  # a malformed event must not stop the metrics
                        log.exception("metrics: event %s not recorded", event.seq)
            # Cut off (we fell behind) or the bus stopped: subscribe again; the
            # refresher corrects the state from the database.
            await asyncio.sleep(0.5)

    def handle(self, event: BusEvent) -> None:
        """Record one event."""
        metrics = self._metrics
        leader = metrics.is_leader()
        conference, code = event.conference_id, event.endpoint
        transition = TRANSITIONS.get(event.type)
        if transition is not None:
            late_ms = event.data.get("late_ms")
            if leader and isinstance(late_ms, int | float) and not isinstance(late_ms, bool):
                metrics.observe_lateness(transition, late_ms / 1000)
        if event.type in ("conference.ended", "conference.cancelled") and conference is not None:
            metrics.conference_closed(conference)
            for key in [k for k in self._invited if k[0] == conference]:
                del self._invited[key]
            return
        if conference is None or code is None:
            return
        key = (conference, code)
        if event.type == "endpoint.invited":
            attempt = event.data.get("attempt")
            reason = event.data.get("reason")
            redial = (isinstance(attempt, int) and attempt > 1) or (
                isinstance(reason, str) and reason != FIRST_CALL_REASON)
            if leader:
                metrics.observe_invitation(redial)
            if key not in self._invited:
                self._invited[key] = event.at
                while len(self._invited) > self._max_pending:
                    self._invited.popitem(last=False)
        elif event.type == "endpoint.joined":
            metrics.joined(code, conference)
            invited_at = self._invited.pop(key, None)
            if leader and invited_at is not None:
                metrics.observe_join((event.at - invited_at).total_seconds())
        elif event.type in ("endpoint.dropped", "endpoint.left", "endpoint.declined"):
            metrics.not_joined(code, conference)
            if event.type == "endpoint.declined":
                self._invited.pop(key, None)


# -- the database ----------------------------------------------------------------------


class StateRefresher:
    """Reads the roster, presence, conference counts, next conferences and the roll
    call from the database every `interval` seconds into `Metrics`. Scrapes read
    this cache; they never query the database."""

    def __init__(
        self,
        metrics: Metrics,
        database: Database,
        clock: Clock,
        *,
        presence_stale: timedelta,
        status_model: StatusModel = presence_status,
        interval: float = 10.0,
    ) -> None:
        self._metrics = metrics
        self._database = database
        self._clock = clock
        self._stale = presence_stale
        self._status_model = status_model
        self.interval = interval

    async def run(self) -> None:
        """Refresh every `interval` seconds until cancelled (failures are logged, retried)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except Exception:
                log.exception("metrics: refreshing from the database failed")

    async def refresh(self) -> None:
        """One refresh: a few reads in one session."""
        now = self._clock.now()
        running = RUNNING_STATUSES
        async with self._database.read() as session:
            endpoints = (await session.execute(
                select(Endpoint.id, Endpoint.code).where(Endpoint.active).order_by(Endpoint.id)
            )).all()
            counts = {
                ConferenceStatus(status).value: int(count)
                for status, count in (await session.execute(
                    select(Conference.status, func.count())
                    .where(Conference.status.in_(ACTIVE_STATUSES)).group_by(Conference.status)
                )).all()
            }
            next_start: dict[int, datetime] = {
                endpoint_id: start
                for endpoint_id, start in (await session.execute(
                    select(Participant.endpoint_id, func.min(Conference.start))
                    .join(Conference, Conference.id == Participant.conference_id)
                    .where(Conference.status.in_((ConferenceStatus.SCHEDULED,
                                                  ConferenceStatus.OPEN)),
                           Conference.start > now)
                    .group_by(Participant.endpoint_id)
                )).all()
            }
            last_seen: dict[int, datetime] = {
                endpoint_id: seen
                for endpoint_id, seen in (await session.execute(
                    select(EndpointPresence.endpoint_id, EndpointPresence.last_seen)
                )).all()
            }
            up = await online(session, [e.id for e in endpoints], now, self._stale)
            joined: dict[str, int] = {
                code: conference_id
                for code, conference_id in (await session.execute(
                    select(Endpoint.code, Attendance.conference_id)
                    .join(Endpoint, Endpoint.id == Attendance.endpoint_id)
                    .join(Conference, Conference.id == Attendance.conference_id)
                    .where(Attendance.state == JOINED, Conference.status.in_(running))
                )).all()
            }
        metrics = self._metrics
        metrics.set_roster(e.code for e in endpoints)
        metrics.set_conference_counts(counts, valid_for=3 * self.interval)
        metrics.set_joined(joined)
        for endpoint_id, code in endpoints:
            start = next_start.get(endpoint_id)
            metrics.set_next_conference_start(code, start)
            facts = EndpointFacts(code, endpoint_id in up, last_seen.get(endpoint_id),
                                  code in joined, start)
            metrics.set_endpoint_status(code, self._status_model(facts))


# -- media -----------------------------------------------------------------------------


class MediaSampler:
    """Samples a `MediaSource` every `interval` seconds into the quality gauges."""

    def __init__(self, metrics: Metrics, source: MediaSource, *, interval: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._source = source
        self.interval = interval
        self._monotonic = monotonic
        self._previous: dict[str, tuple[float, MediaCounters]] = {}

    async def run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:
                log.exception("metrics: sampling media counters failed")
            await asyncio.sleep(self.interval)

    def sample(self) -> None:
        now = self._monotonic()
        current = dict(self._source())
        for code in self._previous.keys() - current.keys():
            self._metrics.clear_quality(code)
        for code, counters in current.items():
            before = self._previous.get(code)
            previous, seconds = (None, 0.0) if before is None else (before[1], now - before[0])
            self._metrics.set_quality(code, quality_between(previous, counters, seconds))
        self._previous = {code: (now, counters) for code, counters in current.items()}

