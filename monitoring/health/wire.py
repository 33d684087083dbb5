"""The heartbeat on the wire: the body an agent sends (POST or event stream) and the one
the operator's page sends (event stream, `call.source` "browser"), strictly validated,
and the health model's facts made from either."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from monitoring.health.latest import Latest
from monitoring.health.model import CallFigures, Devices, Report, TestCall
from vcbridge.core.http.json_schema import Documented, whole_number


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


Count = Annotated[int, Field(ge=0, le=10**9), whole_number]
# A received video's slot, as the bridge names it (docs/signaling.md): "chair", "floor",
# "self" (a test call), "grid:CODE" (the chair's console), "lineN" (a line without a name).
SLOT_PATTERN = r"^(chair|floor|self|line[0-9]{1,3}|grid:[A-Z0-9][A-Z0-9-]{0,63})$"
SlotName = Annotated[str, Field(pattern=SLOT_PATTERN, max_length=69)]
FramesPerSecond = Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]


class MediaIn(BaseModel):
    """What the endpoint received of one media kind over the interval (its inbound RTP)."""

    model_config = _STRICT
    bitrate_bps: float | None = _figure(1e10)
    packets_received: Count | None = None
    packets_lost: Count | None = None
    loss_ratio: float | None = _figure(1)
    jitter_ms: float | None = _figure(600_000)


class VideoIn(MediaIn):
    """Received video: also the decoded frames per second of each slot that received."""

    fps_by_slot: Annotated[dict[SlotName, FramesPerSecond], Field(max_length=256)] | None = None


class MediaOut(BaseModel):
    """What the endpoint sent of one media kind over the interval (its outbound RTP), and
    what the bridge's RTCP receiver reports said of it."""

    model_config = _STRICT
    bitrate_bps: float | None = _figure(1e10)
    packets_sent: Count | None = None
    loss_ratio: float | None = _figure(1)
    jitter_ms: float | None = _figure(600_000)
    rtt_ms: float | None = _figure(600_000)


class AudioDetail(BaseModel):
    """Audio, each direction (`in`, `out`)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)
    in_: MediaIn | None = Field(default=None, alias="in")
    out: MediaOut | None = None


class VideoDetail(BaseModel):
    """Video, each direction (`in`, `out`)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)
    in_: VideoIn | None = Field(default=None, alias="in")
    out: MediaOut | None = None


# The summary figures of `call` (what the health model reads); the rest is detail.
CALL_SUMMARY = ("conference", "rtt_ms", "jitter_ms", "packet_loss_ratio", "bitrate_in_bps",
                "bitrate_out_bps", "fps", "audio_level", "source")


# Who measured: the endpoint agent, the page, or the bridge's OPTIONS ping of a SIP room.
Source = Literal["agent", "browser", "sip"]


class CallFiguresIn(BaseModel):
    """Media figures of the call the endpoint is in, over the last interval: the summary
    (the worst of the kinds) and, optionally, the detail per kind and direction."""

    model_config = _STRICT
    conference: Annotated[int, Field(ge=1, le=2**62), whole_number] | None = None
    rtt_ms: float | None = _figure(600_000)
    jitter_ms: float | None = _figure(600_000)
    packet_loss_ratio: float | None = _figure(1)
    bitrate_in_bps: float | None = _figure(1e10)
    bitrate_out_bps: float | None = _figure(1e10)
    fps: float | None = _figure(1000)
    audio_level: float | None = _figure(1)
    audio: AudioDetail | None = None
    video: VideoDetail | None = None


class CallIn(CallFiguresIn):
    """An agent's call figures (`source` "agent", or absent from older agents)."""

    source: Literal["agent"] | None = None


class PageCallIn(CallFiguresIn):
    """The operator's page's call figures: it says it is the browser."""

    source: Literal["browser"]


class TestCallIn(BaseModel):
    """The result of the agent's last short test call through the bridge."""

    model_config = _STRICT
    ok: bool
    at: When
    audio_packets: Annotated[int, Field(ge=0, le=10**9), whole_number] = 0
    video_frames: Annotated[int, Field(ge=0, le=10**9), whole_number] = 0
    loss: float | None = _figure(1)
    rtt_ms: float | None = _figure(600_000)


class _HeartbeatBase(BaseModel):
    model_config = _STRICT
    sent_at: When
    devices: DevicesIn
    cpu_percent: float | None = _figure(100)
    network: NetworkIn | None = None
    test_call: TestCallIn | None = None
    agent_version: Annotated[str, Field(max_length=64)] | None = None


class Heartbeat(_HeartbeatBase):
    """An agent's heartbeat: POST /api/v1/endpoints/{code}/heartbeat, or on its event
    stream (strict: no "5" for 5, no unknown field)."""

    call: CallIn | None = None


class PageHeartbeat(_HeartbeatBase):
    """The operator's page's heartbeat, on its event stream while in a conference: it
    reports its call, always."""

    call: PageCallIn


AnyHeartbeat = Heartbeat | PageHeartbeat


class StreamHeartbeat(BaseModel):
    """An agent's heartbeat sent on the event stream."""

    model_config = _STRICT
    type: Literal["heartbeat"]
    body: Heartbeat


class PageStreamHeartbeat(BaseModel):
    """The page's heartbeat sent on the event stream."""

    model_config = _STRICT
    type: Literal["heartbeat"]
    body: PageHeartbeat


def source_of(body: AnyHeartbeat) -> Source:
    """Who sent `body`: the agent or the operator's page."""
    return "browser" if isinstance(body, PageHeartbeat) else "agent"


def facts_of(body: AnyHeartbeat, received_at: datetime) -> Latest:
    """The model's facts from an accepted heartbeat."""
    offset = (received_at - body.sent_at).total_seconds()
    call = None
    if body.call is not None:
        c = body.call
        # Field by field (a model_dump costs several times more, on every heartbeat); the
        # detail is kept as the validated models, put in JSON form only when stored or
        # shown (codec.detail_to_json).
        detail = None if c.audio is None and c.video is None else {
            "audio": c.audio, "video": c.video}
        call = CallFigures(
            conference=c.conference, rtt_ms=c.rtt_ms, jitter_ms=c.jitter_ms,
            packet_loss_ratio=c.packet_loss_ratio, bitrate_in_bps=c.bitrate_in_bps,
            bitrate_out_bps=c.bitrate_out_bps, fps=c.fps, audio_level=c.audio_level,
            source=source_of(body), detail=detail)
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
