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
Call quality, each with the label `side`: who measured it, `site` (the
endpoint's own figures, from its heartbeats: exported by the process that
received them) or `bridge` (from the site's RTP and RTCP reports as the bridge
receives them: exported by the process whose room carries the site's media):

- `vcbridge_endpoint_round_trip_time_seconds`, `vcbridge_endpoint_jitter_seconds`:
  media round-trip time and jitter.
- `vcbridge_endpoint_packet_loss_ratio`: 0..1 over the last interval, of the
  packets the measuring side receives.
- `vcbridge_endpoint_receive_bytes_per_second`,
  `vcbridge_endpoint_send_bytes_per_second`: the media bit rate the measuring
  side receives and sends, in bytes per second: bytes are Prometheus' base unit
  of data (`promtool check metrics` refuses `bits`); dashboards multiply by 8
  to show bit/s.
- `vcbridge_endpoint_frames_per_second`: video frames per second the measuring
  side receives (the site: the pictures it is shown; the bridge: the site's camera).

The health model's limits on them, the same for every endpoint (settings
`health_*`, so that alert rules compare with what the service uses):
`vcbridge_health_max_packet_loss_ratio`, `vcbridge_health_max_round_trip_time_seconds`,
`vcbridge_health_max_jitter_seconds`, `vcbridge_health_min_frames_per_second`
(NaN: not checked).
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
- With a SIP gateway configured (`watch_sip_gateway`, read at scrape time):
  `vcbridge_sip_gateway_up` (1: a session with Janus), `vcbridge_sip_legs` (SIP
  calls up) and, when it registers with a proxy, `vcbridge_sip_gateway_registered`;
  the SIP rooms' OPTIONS pings (`watch_sip_sites`): `vcbridge_sip_site_up{endpoint}`
  and `vcbridge_sip_site_options_rtt_seconds{endpoint}`.
- With bridge rooms in the process (`watch_audio_mixes`, read at scrape time, all
  rooms together): `vcbridge_audio_mix_frames_total{speakers}`,
  `vcbridge_audio_mix_skipped_frames_total` (the process fell behind: audio gaps at
  every site), `vcbridge_audio_mix_encodes_total`, `vcbridge_audio_mix_forwarded_total`
  and `vcbridge_audio_mix_packets_total{fate}` (`collectors.AudioMixes`).

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

How the parts feed it (each in its own module of this package):
- `recorder.MetricsRecorder` follows the event bus (transitions, invitations, joins);
- `refresher.StateRefresher` reads the database every 10 s (roster, conference
  counts, presence, next conferences, roll call) and caches it: a scrape never
  queries the database; the health monitor decides each endpoint's status
  through a `status.StatusModel`;
- `media.MediaSampler` turns cumulative media counters (the core's
  `MediaCounters`, from the bridge through a `MediaSource` given by the
  composition root) into rates and ratios;
- `collectors` reads the conference counts, login counters, SIP gateway and audio
  mixes at scrape time;
- `heartbeat_dropped` counts refused heartbeats, for a listener on the health
  monitor's `drop_listeners`;
- `routes` serves `GET /metrics`, `http_middleware` counts the requests."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from monitoring.health.model import HealthState
from monitoring.metrics.collectors import (
    CONFERENCE_STATES,
    AudioMixes,
    ConferenceCounts,
    LoginCounts,
    SipGatewayState,
    SipSitesReach,
)
from monitoring.metrics.endpoint_gauges import EndpointGauge, render_all
from monitoring.metrics.status import EndpointStatus
from vcbridge.core.auth.login_limiter import LoginStats
from vcbridge.core.event_types import EventType
from vcbridge.core.media_counters import MixSource
from vcbridge.core.sip_gateway_status import SipGatewayProbe, SipSitesProbe

NAN = math.nan

# The lifecycle events that carry `data.late_ms`, and their `transition` label.
TRANSITIONS: Mapping[str, str] = {
    EventType.CONFERENCE_OPENED: "open",
    EventType.CONFERENCE_LIVE: "live",
    EventType.CONFERENCE_ENDING_SOON: "warn",
    EventType.CONFERENCE_ENDED: "end",
}
# Why a heartbeat was refused (monitoring/health/heartbeat_api.py); any other is "other".
HEARTBEAT_DROP_REASONS = (
    "unauthorized", "forbidden", "rate_limited", "too_large", "malformed", "invalid", "other",
)
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                    900.0, 3600.0)
JOIN_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
# Who measured a quality value (the label `side`).
SIDES = ("site", "bridge")


@dataclass(frozen=True)
class QualityLimits:
    """The health model's limits on the quality figures, in the metrics' units."""

    packet_loss_ratio: float
    round_trip_time_seconds: float
    jitter_seconds: float
    frames_per_second: float  # a minimum; NaN: not checked


def _timestamp(at: datetime | None) -> float:
    return NAN if at is None else at.timestamp()


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

        self._add_endpoint_families()
        self._add_service_families()

    def _endpoint_gauge(self, name: str, doc: str, extra_label: str | None = None
                        ) -> EndpointGauge:
        gauge = EndpointGauge(f"vcbridge_endpoint_{name}", doc, extra_label)
        self._endpoint_gauges.append(gauge)
        return gauge

    def _add_endpoint_families(self) -> None:
        """The per-endpoint gauges (the fast path: see endpoint_gauges.py)."""
        endpoint_gauge = self._endpoint_gauge
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
        side = "side"
        self.quality: dict[str, EndpointGauge] = {
            "round_trip_time_seconds": endpoint_gauge(
                "round_trip_time_seconds",
                "Media round-trip time, as the side (site or bridge) measured it "
                "(NaN: not measured now).", side),
            "jitter_seconds": endpoint_gauge(
                "jitter_seconds",
                "Media inter-arrival jitter, as the side (site or bridge) measured it "
                "(NaN: not measured now).", side),
            "packet_loss_ratio": endpoint_gauge(
                "packet_loss_ratio",
                "Share of the packets the side (site or bridge) receives that were lost "
                "over the last interval, 0 to 1.", side),
            "receive_bytes_per_second": endpoint_gauge(
                "receive_bytes_per_second",
                "Media bytes per second the side (site or bridge) receives.", side),
            "send_bytes_per_second": endpoint_gauge(
                "send_bytes_per_second",
                "Media bytes per second the side (site or bridge) sends.", side),
            "frames_per_second": endpoint_gauge(
                "frames_per_second",
                "Video frames per second the side receives (site: the pictures it is "
                "shown; bridge: the site's camera).", side),
        }
        assert tuple(self.quality) == QUALITY_FIELDS
        self._quality_gauges = tuple(self.quality.values())

    def _add_service_families(self) -> None:
        """The service-wide families, in the registry."""
        registry = self.registry
        self._conference_counts = ConferenceCounts()
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
        self.limit_loss = Gauge(
            "vcbridge_health_max_packet_loss_ratio",
            "Packet loss above which an endpoint in a call is degraded (packet_loss).",
            registry=registry)
        self.limit_rtt = Gauge(
            "vcbridge_health_max_round_trip_time_seconds",
            "Round-trip time above which an endpoint is degraded (high_rtt).",
            registry=registry)
        self.limit_jitter = Gauge(
            "vcbridge_health_max_jitter_seconds",
            "Jitter above which an endpoint in a call is degraded (high_jitter).",
            registry=registry)
        self.limit_fps = Gauge(
            "vcbridge_health_min_frames_per_second",
            "Received video frame rate below which an endpoint in a call is degraded "
            "(low_fps; NaN: not checked).", registry=registry)
        for gauge in (self.limit_loss, self.limit_rtt, self.limit_jitter, self.limit_fps):
            gauge.set(NAN)
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
        """The endpoints exported now (the active roster)."""
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
            self.set_endpoint_status(code, EndpointStatus(HealthState.OFFLINE, False))
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
        """Set an endpoint's up, health state, ready and last-heartbeat series."""
        if code not in self._endpoints:
            return
        self.up.set(code, 0 if status.health is HealthState.OFFLINE else 1)
        for state in HealthState:
            self.health_state.set(code, 1 if state is status.health else 0, state.value)
        self.ready.set(code, 1 if status.ready else 0)
        self.last_heartbeat.set(code, _timestamp(status.last_heartbeat))

    def set_next_conference_start(self, code: str, start: datetime | None) -> None:
        """Set the start of the endpoint's next conference (None: none)."""
        if code in self._endpoints:
            self.next_conference_start.set(code, _timestamp(start))

    def set_quality(self, code: str, quality: Quality, side: str = "bridge") -> None:
        """Set the gauges of the values `quality` gives as measured by `side` (None leaves
        a gauge as it is)."""
        if code not in self._endpoints or side not in SIDES:
            return
        for name, gauge in self.quality.items():
            value = getattr(quality, name)
            if value is not None:
                gauge.set(code, value, side)

    def set_quality_row(self, code: str, side: str, row: tuple[float, ...]) -> None:
        """Set every quality gauge of `code` as measured by `side`, in `QUALITY_FIELDS`'
        order (NaN: not measured): the heartbeat's fast path."""
        if code in self._endpoints:
            for gauge, value in zip(self._quality_gauges, row, strict=True):
                gauge.set(code, value, side)

    def clear_quality(self, code: str, side: str | None = None) -> None:
        """No current measurement of `code` by `side` (default: either): it left the call."""
        if code in self._endpoints:
            for gauge in self.quality.values():
                for each in SIDES if side is None else (side,):
                    gauge.set(code, NAN, each)

    def set_quality_limits(self, limits: QualityLimits) -> None:
        """Export the health model's limits on the quality figures."""
        self.limit_loss.set(limits.packet_loss_ratio)
        self.limit_rtt.set(limits.round_trip_time_seconds)
        self.limit_jitter.set(limits.jitter_seconds)
        self.limit_fps.set(limits.frames_per_second)

    def joined(self, code: str, conference_id: int) -> None:
        """`code` joined `conference_id`."""
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
        """Nobody is joined to `conference_id` any more (it ended)."""
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
        """How late a lifecycle transition ran."""
        self.lateness.labels(transition).observe(max(seconds, 0.0))

    def observe_invitation(self, redial: bool) -> None:
        """One invitation sent (`redial`: a redial)."""
        self.invitations.inc()
        if redial:
            self.redials.inc()

    def observe_join(self, seconds: float) -> None:
        """The time from an endpoint's first invitation to its joining."""
        self.join_duration.observe(max(seconds, 0.0))

    def observe_http(self, route: str, method: str, status: int, seconds: float | None) -> None:
        """One answered request; `seconds` None leaves it out of the duration (WebSocket)."""
        self.http_requests.labels(route, method, str(status)).inc()
        if seconds is not None:
            self.http_duration.labels(route, method).observe(seconds)

    def watch_sip_gateway(self, probe: SipGatewayProbe) -> None:
        """Export the SIP gateway's status (`SipGatewayState`)."""
        self.registry.register(SipGatewayState(probe))

    def watch_sip_sites(self, probe: SipSitesProbe) -> None:
        """Export the SIP rooms' OPTIONS pings (`SipSitesReach`)."""
        self.registry.register(SipSitesReach(probe))

    def watch_audio_mixes(self, source: MixSource) -> None:
        """Export the bridge rooms' audio mixes (`AudioMixes`)."""
        self.registry.register(AudioMixes(source))

    def watch_logins(self, stats: LoginStats) -> None:
        """Export the login counters of the core's login limiter."""
        self.registry.register(LoginCounts(stats))

    def heartbeat_dropped(self, reason: str) -> None:
        """Count a refused heartbeat by reason (unknown reasons as other)."""
        self.heartbeats_dropped.labels(
            reason if reason in HEARTBEAT_DROP_REASONS else "other").inc()


METRICS = web.AppKey("metrics", Metrics)
