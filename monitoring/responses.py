"""Response bodies of monitoring's API: endpoint health, heartbeats, availability and
a conference's readiness."""

from __future__ import annotations

import contextlib
from dataclasses import fields
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema

from monitoring.health import model
from monitoring.health.codec import detail_to_json
from monitoring.health.model import HealthState, ReasonCode
from vcbridge.core.clock import to_local_iso
from vcbridge.core.http.render import LocalTime, ResponseModel

# What monitoring.availability.month_bounds accepts.
MONTH = r"^(2[01][0-9]{2}|2200)-(0[1-9]|1[0-2])$"
Figure = float | None


class HealthReason(ResponseModel):
    """Why an endpoint is not ok: a stable code, figures, texts."""

    code: ReasonCode
    vi: str
    en: str
    value: float | SkipJsonSchema[None] = None
    limit: float | SkipJsonSchema[None] = None
    at: LocalTime | SkipJsonSchema[None] = None

    @classmethod
    def of(cls, reason: model.Reason, zone: ZoneInfo, now: datetime | None = None
           ) -> HealthReason:
        """A reason as the API shows it; a figure or time only when the reason has one
        (left unset, so the answer leaves the key out). `now` lets a time on another day
        show its date."""
        vi, en = reason.texts(zone, now)
        figures: dict[str, Any] = {}
        if reason.value is not None:
            figures["value"] = round(reason.value, 4)
        if reason.limit is not None:
            figures["limit"] = reason.limit
        if reason.at is not None:
            figures["at"] = to_local_iso(reason.at, zone)
        return cls(code=reason.code, vi=vi, en=en, **figures)


class HealthTestCall(ResponseModel):
    """The endpoint's last pre-flight test call."""

    ok: bool
    at: LocalTime
    audio_packets: int
    video_frames: int
    loss: Figure
    rtt_ms: Figure

    @classmethod
    def of(cls, test_call: model.TestCall, zone: ZoneInfo) -> HealthTestCall:
        """The test call as the API shows it."""
        return cls(ok=test_call.ok, at=to_local_iso(test_call.at, zone),
                   audio_packets=test_call.audio_packets, video_frames=test_call.video_frames,
                   loss=test_call.loss, rtt_ms=test_call.rtt_ms)


class Devices(ResponseModel):
    """The devices the agent found working."""

    camera: bool
    microphone: bool
    speaker: bool

    @classmethod
    def of(cls, devices: model.Devices) -> Devices:
        """The devices a heartbeat reported."""
        return cls(camera=devices.camera, microphone=devices.microphone,
                   speaker=devices.speaker)


class Network(ResponseModel):
    """The agent's network."""

    interface: str | None
    rtt_ms: Figure

    @classmethod
    def of(cls, report: model.Report) -> Network:
        """The network a heartbeat reported."""
        return cls(interface=report.network_interface, rtt_ms=report.network_rtt_ms)


class MediaInView(ResponseModel):
    """What the site received of one media kind over the interval (its inbound RTP)."""

    bitrate_bps: Figure = None
    packets_received: int | None = None
    packets_lost: int | None = None
    loss_ratio: Figure = None
    jitter_ms: Figure = None
    fps_by_slot: dict[str, float] | None = Field(
        default=None, description="video only: decoded frames per second of each slot")


class MediaOutView(ResponseModel):
    """What the site sent of one media kind over the interval, and what the bridge's RTCP
    receiver reports said of it."""

    bitrate_bps: Figure = None
    packets_sent: int | None = None
    loss_ratio: Figure = None
    jitter_ms: Figure = None
    rtt_ms: Figure = None


class KindView(ResponseModel):
    """One media kind, each direction."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    in_: MediaInView | None = Field(default=None, alias="in")
    out: MediaOutView | None = None


class CallView(ResponseModel):
    """One side's view of the call over its last interval: the site's (its heartbeat) or
    the bridge's (the site's RTP and RTCP as the bridge receives them). `bitrate_in_bps`
    is what that side receives, `bitrate_out_bps` what it sends; `fps` the video frames
    per second it receives."""

    measured_at: LocalTime
    rtt_ms: Figure
    jitter_ms: Figure
    packet_loss_ratio: Figure
    bitrate_in_bps: Figure
    bitrate_out_bps: Figure
    fps: Figure
    # The site's detail, when its heartbeat gave it: which kind and direction is impaired.
    audio: KindView | SkipJsonSchema[None] = None
    video: KindView | SkipJsonSchema[None] = None

    @classmethod
    def of(cls, figures: model.CallFigures, measured_at: datetime, zone: ZoneInfo
           ) -> CallView:
        """One side's figures, measured at `measured_at`."""
        detail: dict[str, Any] = {}
        for kind, body in (detail_to_json(figures.detail) or {}).items():
            if isinstance(body, dict):
                # Stored by another version with other fields: the summary still shows.
                with contextlib.suppress(ValidationError):
                    detail[kind] = KindView.model_validate(body)
        return cls(measured_at=to_local_iso(measured_at, zone), rtt_ms=figures.rtt_ms,
                   jitter_ms=figures.jitter_ms, packet_loss_ratio=figures.packet_loss_ratio,
                   bitrate_in_bps=figures.bitrate_in_bps,
                   bitrate_out_bps=figures.bitrate_out_bps, fps=figures.fps, **detail)


class CallFigures(ResponseModel):
    """The call the endpoint is in: the figures the health model judges (the worse of the
    two views for loss, jitter, round-trip time and frame rate; the site's bit rates and
    audio level), and each view side by side."""

    conference: int | None
    rtt_ms: Figure
    jitter_ms: Figure
    packet_loss_ratio: Figure
    bitrate_in_bps: Figure
    bitrate_out_bps: Figure
    fps: Figure
    audio_level: Figure
    source: Literal["agent", "browser"] | None = Field(
        description="who measured the site's view: the endpoint agent or the operator's "
                    "page (null: an agent too old to say, or no site view)")
    site: CallView | None
    bridge: CallView | None

    @classmethod
    def of(cls, site: model.CallFigures | None, site_at: datetime | None,
           bridge: model.BridgeView | None, zone: ZoneInfo) -> CallFigures | None:
        """The call of an endpoint from the site's figures (reported at `site_at`) and the
        bridge's view; None when neither side has any."""
        bridge_figures = bridge.figures if bridge is not None else None
        judged = model.worse_of(site, bridge_figures)
        if judged is None:
            return None
        # The site's own detail is shown in its view, not here.
        figures = {f.name: getattr(judged, f.name) for f in fields(judged)
                   if f.name != "detail"}
        return cls(
            **figures,
            site=CallView.of(site, site_at, zone) if site is not None and site_at else None,
            bridge=(CallView.of(bridge_figures, bridge.measured_at, zone)
                    if bridge is not None and bridge_figures is not None else None),
        )


class EndpointHealth(ResponseModel):
    """One endpoint's health."""

    code: str
    name: str
    name_en: str
    state: HealthState
    since: LocalTime | None
    reasons: list[HealthReason]
    last_heartbeat: LocalTime | None
    seconds_since_heartbeat: Figure
    event_stream: bool
    devices: Devices | None
    cpu_percent: Figure
    network: Network | None
    call: CallFigures | None
    clock_offset_seconds: Figure
    agent_version: str | None
    source: Annotated[Literal["agent", "sip"] | None, Field(
        description="Who reports it: agent (its agent's or page's heartbeats) or sip (a SIP "
                    "room system: the bridge's OPTIONS pings, docs/sip.md); null: never.")]
    test_call: HealthTestCall | None


class HealthCounts(ResponseModel):
    """How many endpoints are in each state."""

    ok: int
    degraded: int
    offline: int


class HealthBoard(ResponseModel):
    """GET /api/v1/health."""

    time: LocalTime
    counts: HealthCounts
    endpoints: list[EndpointHealth]


class HealthSample(ResponseModel):
    """A minute's means (null where nothing was measured): the site's figures from its
    heartbeats, and the bridge's (`bridge_*`) from the room carrying its media."""

    minute: LocalTime
    heartbeats: int
    degraded: int
    in_call: int
    cpu_percent: Figure
    network_rtt_ms: Figure
    rtt_ms: Figure
    jitter_ms: Figure
    packet_loss_ratio: Figure
    fps: Figure
    bitrate_in_bps: Figure
    bitrate_out_bps: Figure
    bridge_rtt_ms: Figure
    bridge_jitter_ms: Figure
    bridge_packet_loss_ratio: Figure
    bridge_fps: Figure
    bridge_bitrate_in_bps: Figure
    bridge_bitrate_out_bps: Figure


class HealthTransitionItem(ResponseModel):
    """A change of the endpoint's health."""

    at: LocalTime
    state: HealthState
    previous: HealthState | None
    reasons: list[HealthReason]


class EndpointHealthDetail(EndpointHealth):
    """GET /api/v1/health/{code}: the endpoint, its per-minute figures and transitions."""

    samples: list[HealthSample]
    transitions: list[HealthTransitionItem]


class HealthHistory(ResponseModel):
    """GET /api/v1/health/{code}/history: the window minute by minute, for charts."""

    model_config = ConfigDict(populate_by_name=True)

    code: str
    name: str
    name_en: str
    from_: Annotated[LocalTime, Field(alias="from", description=(
        "The first minute of the window; minute i of every series starts at from + i × "
        "step_seconds."))]
    to: Annotated[LocalTime, Field(description="The end of the window (exclusive).")]
    step_seconds: int
    minutes: Annotated[int, Field(description="How many values each series holds.")]
    series: Annotated[dict[str, list[int | float | None]], Field(description=(
        "Per-minute values by name: the counts heartbeats, in_call and degraded (0 where "
        "no heartbeat came), and the means cpu_percent, network_rtt_ms, rtt_ms, "
        "jitter_ms, packet_loss_ratio, fps, bitrate_in_bps, bitrate_out_bps (null where "
        "nothing was measured: the call figures exist only while in a call). Figures "
        "the service learns to store later are added under their own names."))]
    state_at_start: Annotated[HealthState | None, Field(description=(
        "The state when the window began (null: not monitored yet then)."))]
    transitions: Annotated[list[HealthTransitionItem], Field(description=(
        "The changes within the window, oldest first (at most the newest 500)."))]
    transitions_total: int


class AvailabilityRow(ResponseModel):
    """One endpoint's month."""

    code: str
    name: str
    online_percent: Figure
    offline_minutes: float
    degraded_minutes: float
    monitored_percent: float
    conferences_invited: int
    conferences_attended: int
    attendance_percent: Figure
    mean_rtt_ms: Figure
    p95_rtt_ms: Figure
    mean_jitter_ms: Figure
    p95_jitter_ms: Figure
    mean_packet_loss_percent: Figure
    p95_packet_loss_percent: Figure
    mean_fps: Figure
    p5_fps: Figure
    call_minutes: int


class AvailabilityReport(ResponseModel):
    """GET /api/v1/reports/availability (JSON)."""

    # Built by field name (`from_`); the answer and the document say `from`.
    model_config = ConfigDict(populate_by_name=True)

    month: Annotated[str, Field(pattern=MONTH)]
    from_: Annotated[LocalTime, Field(alias="from")]
    to: LocalTime
    elapsed_seconds: int
    endpoints: list[AvailabilityRow]


class ParticipantReadiness(ResponseModel):
    """One participant's readiness."""

    code: str
    name: str
    ready: bool
    state: HealthState
    since: LocalTime | None
    last_heartbeat: LocalTime | None
    devices: Devices | None
    test_call: HealthTestCall | None
    problems: list[HealthReason]
    warnings: list[HealthReason]


class Readiness(ResponseModel):
    """GET /api/v1/conferences/{id}/readiness."""

    conference: int
    title: str
    status: str
    start: LocalTime
    time: LocalTime
    ready: int
    total: int
    summary_vi: str
    summary_en: str
    endpoints: list[ParticipantReadiness]


class HeartbeatAnswer(ResponseModel):
    """POST /api/v1/endpoints/{code}/heartbeat: the endpoint's health now."""

    endpoint: str
    state: HealthState
    since: LocalTime
    reasons: list[HealthReason]
    clock_offset_seconds: float
    clock_skew: bool
    interval_seconds: float
    server_time: LocalTime
