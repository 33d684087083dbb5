"""Response bodies of monitoring's API: endpoint health, heartbeats, availability and
a conference's readiness."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from monitoring.health.model import HealthState, ReasonCode
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


class HealthTestCall(ResponseModel):
    """The endpoint's last pre-flight test call."""

    ok: bool
    at: LocalTime
    audio_packets: int
    video_frames: int
    loss: Figure
    rtt_ms: Figure


class Devices(ResponseModel):
    """The devices the agent found working."""

    camera: bool
    microphone: bool
    speaker: bool


class Network(ResponseModel):
    """The agent's network."""

    interface: str | None
    rtt_ms: Figure


class CallFigures(ResponseModel):
    """The call the endpoint is in."""

    conference: int | None
    rtt_ms: Figure
    jitter_ms: Figure
    packet_loss_ratio: Figure
    bitrate_in_bps: Figure
    bitrate_out_bps: Figure
    fps: Figure
    audio_level: Figure


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
    """A minute's means (null where nothing was measured)."""

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
    mean_jitter_ms: Figure
    mean_packet_loss_percent: Figure
    mean_fps: Figure
    call_minutes: int


class AvailabilityReport(ResponseModel):
    """GET /api/v1/reports/availability (JSON)."""

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
