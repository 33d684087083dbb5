"""Endpoint health, decided from facts: pure functions over frozen dataclasses, no I/O.

An endpoint is `ok`, `degraded` or `offline`, with reasons. The inputs:

- heartbeats from its agent (`Report`, the latest one): no heartbeat for
  `offline_after` -> offline;
- the agent's self-report: a missing camera, microphone or speaker, a busy
  CPU, a clock far from the server's -> degraded;
- the event stream (vcbridge/core/presence.py): an agent that sends heartbeats but
  holds no event-stream connection cannot be invited -> degraded;
- call quality while in a call, from both ends (the site's own figures in its
  heartbeat, the bridge's from the site's RTP and RTCP): packet loss,
  round-trip time, jitter, frame rate past their thresholds, judged on the
  worse of the two views -> degraded;
- the last short test call, when the agent made one: failed recently -> degraded.

Quality reasons (loss, jitter, round-trip time, frame rate, CPU) have
hysteresis, judged once per heartbeat interval by `judge_quality`: a reason
is raised when its figure passes the threshold, and clears only when the
figure is `hysteresis` (20 %) back inside it for `clear_intervals` (3)
heartbeats in a row, so a loss hovering around 2 % does not flap between ok
and degraded. The verdict travels with the report (`Report.quality`), so the
sweep, the API and the recorder, in any process, read the same decision.

Every reason has a stable machine code plus Vietnamese and English texts.
`readiness.py` turns the health of a conference's participants into the
pre-flight summary."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from vcbridge.core.settings import Settings


class HealthState(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    OFFLINE = "offline"


class ReasonCode(enum.StrEnum):
    """Why an endpoint is not `ok` (stable: dashboards and reports key on these)."""

    NEVER_SEEN = "never_seen"  # offline: no heartbeat ever received
    NO_HEARTBEAT = "no_heartbeat"  # offline: the last heartbeat is too old
    CONSOLE_ONLY = "console_only"  # degraded: the event stream is up, heartbeats are not
    CAMERA_MISSING = "camera_missing"
    MICROPHONE_MISSING = "microphone_missing"
    SPEAKER_MISSING = "speaker_missing"
    EVENT_STREAM_DOWN = "event_stream_down"
    PACKET_LOSS = "packet_loss"
    HIGH_RTT = "high_rtt"
    HIGH_JITTER = "high_jitter"
    LOW_FPS = "low_fps"
    HIGH_CPU = "high_cpu"
    CLOCK_SKEW = "clock_skew"
    TEST_CALL_FAILED = "test_call_failed"


# Problems that make an endpoint not ready for a conference (the rest are warnings).
NOT_READY_CODES = frozenset({
    ReasonCode.NEVER_SEEN, ReasonCode.NO_HEARTBEAT, ReasonCode.CAMERA_MISSING,
    ReasonCode.MICROPHONE_MISSING, ReasonCode.SPEAKER_MISSING, ReasonCode.EVENT_STREAM_DOWN,
    ReasonCode.TEST_CALL_FAILED,
})


@dataclass(frozen=True)
class Thresholds:
    """The limits of the health model (`configs/vcbridge.toml`, keys `health_*`)."""

    offline_after: timedelta = timedelta(seconds=30)
    packet_loss_max: float = 0.02  # ratio 0..1
    rtt_ms_max: float = 300.0
    jitter_ms_max: float = 30.0
    fps_min: float = 10.0
    cpu_percent_max: float = 90.0
    clock_skew_max: timedelta = timedelta(minutes=5)
    hysteresis: float = 0.2
    # Consecutive good intervals (heartbeats) before a quality reason clears.
    clear_intervals: int = 3
    stream_grace: timedelta = timedelta(seconds=30)
    test_call_max_age: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.offline_after <= timedelta(0):
            raise ValueError("offline_after must be positive")
        if not 0 <= self.hysteresis < 1:
            raise ValueError("hysteresis must be in [0, 1)")
        if self.clear_intervals < 1:
            raise ValueError("clear_intervals must be at least 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            offline_after=timedelta(seconds=settings.health_offline_after_seconds),
            packet_loss_max=settings.health_packet_loss_max,
            rtt_ms_max=settings.health_rtt_ms_max,
            jitter_ms_max=settings.health_jitter_ms_max,
            fps_min=settings.health_fps_min,
            cpu_percent_max=settings.health_cpu_percent_max,
            clock_skew_max=timedelta(seconds=settings.health_clock_skew_seconds),
            hysteresis=settings.health_hysteresis,
            clear_intervals=settings.health_clear_intervals,
            stream_grace=timedelta(seconds=settings.health_stream_grace_seconds),
            test_call_max_age=timedelta(seconds=settings.health_test_call_max_age_seconds),
        )


# -- the facts ---------------------------------------------------------------------


@dataclass(frozen=True)
class Devices:
    camera: bool
    microphone: bool
    speaker: bool


@dataclass(frozen=True)
class CallFigures:
    """Media figures of the call the endpoint is in (None: not measured)."""

    conference: int | None = None
    rtt_ms: float | None = None
    jitter_ms: float | None = None
    packet_loss_ratio: float | None = None
    bitrate_in_bps: float | None = None
    bitrate_out_bps: float | None = None
    fps: float | None = None
    audio_level: float | None = None
    # Who measured: "agent" or "browser" (the operator's page); None from older agents.
    source: str | None = None
    # The site's detail per media kind and direction, as its heartbeat gave it: {"audio":
    # ..., "video": ...}, each the wire's validated model (fresh from a heartbeat) or its
    # JSON form (read back from a row): `codec.detail_to_json` gives the JSON form. Shown
    # by the API, not judged.
    detail: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class BridgeView:
    """The bridge's view of an endpoint's media over its last sampling window: loss of
    the packets it receives from the site, the site's jitter and the round-trip time from
    its RTCP receiver reports, bit rates in (from the site) and out, the site's camera
    frames per second. `figures` None: the endpoint is not connected to a room."""

    measured_at: datetime
    figures: CallFigures | None


@dataclass(frozen=True)
class QualityHold:
    """The quality reasons active after an interval, and for each how many good intervals
    in a row it has had (0: bad now); it clears at `Thresholds.clear_intervals`."""

    reasons: tuple[Reason, ...] = ()
    good: tuple[tuple[ReasonCode, int], ...] = ()

    @property
    def codes(self) -> frozenset[ReasonCode]:
        return frozenset(r.code for r in self.reasons)


@dataclass(frozen=True)
class TestCall:
    """The result of the agent's last short test call; `at` on the server's clock."""

    __test__ = False  # not a pytest test class, despite the name

    ok: bool
    at: datetime
    audio_packets: int = 0
    video_frames: int = 0
    loss: float | None = None
    rtt_ms: float | None = None


@dataclass(frozen=True)
class Report:
    """What the latest heartbeat said; `received_at` is the server's time of arrival."""

    received_at: datetime
    devices: Devices
    # Server time minus the agent's `sent_at`: how far the agent's clock is behind.
    clock_offset_seconds: float = 0.0
    cpu_percent: float | None = None
    network_rtt_ms: float | None = None
    call: CallFigures | None = None
    # The quality verdict of this heartbeat's interval (`judge_quality`); None: judged
    # without memory of the intervals before (a report stored by an older version).
    quality: QualityHold | None = None
    # Kept for the stored form and the API, not used by the model.
    sent_at: datetime | None = None
    agent_version: str | None = None
    network_interface: str | None = None
    # Who reports the endpoint: "agent" (its agent or the operator's page: heartbeats)
    # or "sip" (a SIP room system: the bridge's OPTIONS pings, `sip_presence`).
    source: str = "agent"


def sip_presence(received_at: datetime, rtt_ms: float | None) -> Report:
    """The facts of a SIP room that answered an OPTIONS ping at `received_at`.

    A room system is one unit and SIP tells nothing of its devices: while it
    answers they count as present. It holds no event stream (the bridge calls
    it), so that check does not apply (`evaluate`). Its round trip is the ping's."""
    return Report(received_at=received_at, devices=Devices(True, True, True),
                  network_rtt_ms=rtt_ms, sent_at=received_at, source="sip")


@dataclass(frozen=True)
class Observation:
    """Everything known about one endpoint at one instant."""

    report: Report | None
    stream_connected: bool
    test_call: TestCall | None = None
    # The reasons active before: quality reasons clear only with hysteresis.
    previous: frozenset[ReasonCode] = frozenset()


def stream_connected(
    connections: int | None, last_seen: datetime | None, now: datetime,
    stale_after: timedelta, grace: timedelta,
) -> bool:
    """Whether the endpoint holds the event stream (presence row: count and last change).

    An open connection counts while its last-seen time is refreshed; a closed
    one still counts for `grace`, so an agent reconnecting its WebSocket does
    not flap to degraded and back."""
    if connections is None or last_seen is None:
        return False
    if connections > 0:
        return now - last_seen < stale_after
    return now - last_seen < grace


# -- reasons -------------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    """One reason; `value`/`limit` are the figures, `at` a time (test call)."""

    code: ReasonCode
    value: float | None = None
    limit: float | None = None
    at: datetime | None = None

    def texts(self, zone: ZoneInfo, now: datetime | None = None) -> tuple[str, str]:
        """(Vietnamese, English) text; `now` lets times on another day show their date."""
        vi, en = _TEXTS[self.code]
        values = {
            "v_vi": _number(self.value, self.code, "vi"),
            "v_en": _number(self.value, self.code, "en"),
            "l_vi": _number(self.limit, self.code, "vi"),
            "l_en": _number(self.limit, self.code, "en"),
            "d_vi": duration_text(self.value or 0, "vi"),
            "d_en": duration_text(self.value or 0, "en"),
            "t": clock_text(self.at, zone, now) if self.at else "",
        }
        return vi.format(**values), en.format(**values)

    def to_store(self) -> dict[str, Any]:
        """The stored form (JSON column)."""
        body: dict[str, Any] = {"code": self.code.value}
        if self.value is not None:
            body["value"] = self.value
        if self.limit is not None:
            body["limit"] = self.limit
        if self.at is not None:
            body["at"] = self.at.isoformat()
        return body

    @classmethod
    def from_store(cls, body: Mapping[str, Any]) -> Reason | None:
        """The stored form back; None for a code this version does not know."""
        try:
            code = ReasonCode(str(body.get("code")))
        except ValueError:
            return None
        at = body.get("at")
        return cls(code, body.get("value"), body.get("limit"),
                   datetime.fromisoformat(at) if isinstance(at, str) else None)


# {v}: the value, {l}: the limit, {d}: a duration (value seconds), {t}: a time of day.
_TEXTS: dict[ReasonCode, tuple[str, str]] = {
    ReasonCode.NEVER_SEEN: ("chưa từng nhận được heartbeat", "no heartbeat ever received"),
    ReasonCode.NO_HEARTBEAT: ("không nhận được heartbeat trong {d_vi}",
                              "no heartbeat for {d_en}"),
    ReasonCode.CONSOLE_ONLY: ("chỉ có bảng điều khiển kết nối, chưa kiểm tra được thiết bị",
                              "only the console is connected; devices not checked"),
    ReasonCode.CAMERA_MISSING: ("thiếu camera", "camera missing"),
    ReasonCode.MICROPHONE_MISSING: ("thiếu micrô", "microphone missing"),
    ReasonCode.SPEAKER_MISSING: ("thiếu loa", "speaker missing"),
    ReasonCode.EVENT_STREAM_DOWN: (
        "không kết nối luồng sự kiện (không nhận được lời mời vào họp)",
        "not connected to the event stream (cannot receive invitations)"),
    ReasonCode.PACKET_LOSS: ("mất gói {v_vi} % (ngưỡng {l_vi} %)",
                             "packet loss {v_en} % (limit {l_en} %)"),
    ReasonCode.HIGH_RTT: ("độ trễ khứ hồi {v_vi} ms (ngưỡng {l_vi} ms)",
                          "round-trip time {v_en} ms (limit {l_en} ms)"),
    ReasonCode.HIGH_JITTER: ("độ biến động trễ (jitter) {v_vi} ms (ngưỡng {l_vi} ms)",
                             "jitter {v_en} ms (limit {l_en} ms)"),
    ReasonCode.LOW_FPS: ("hình ảnh {v_vi} khung hình/giây (tối thiểu {l_vi})",
                         "video at {v_en} frames/s (minimum {l_en})"),
    ReasonCode.HIGH_CPU: ("CPU {v_vi} % (ngưỡng {l_vi} %)", "CPU at {v_en} % (limit {l_en} %)"),
    ReasonCode.CLOCK_SKEW: ("đồng hồ lệch {d_vi} so với máy chủ (kiểm tra NTP)",
                            "clock off by {d_en} from the server (check NTP)"),
    ReasonCode.TEST_CALL_FAILED: ("gọi thử thất bại lúc {t}", "test call failed at {t}"),
}


def _number(value: float | None, code: ReasonCode, lang: str) -> str:
    if value is None:
        return ""
    if code is ReasonCode.PACKET_LOSS:
        value *= 100  # shown as a percentage
    text = f"{value:.1f}".removesuffix(".0") if abs(value) < 100 else f"{value:.0f}"
    return text.replace(".", ",") if lang == "vi" else text


def duration_text(seconds: float, lang: str) -> str:
    """'47 s', '2 min 47 s', '3 h 12 min', '2 d 3 h' (Vietnamese: giây, phút, giờ, ngày)."""
    s = max(round(abs(seconds)), 0)
    units = {"vi": ("giây", "phút", "giờ", "ngày"), "en": ("s", "min", "h", "d")}[lang]
    if s < 120:
        return f"{s} {units[0]}"
    minutes, rest = divmod(s, 60)
    if minutes < 60:
        return f"{minutes} {units[1]}" + (f" {rest} {units[0]}" if rest else "")
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} {units[2]}" + (f" {minutes} {units[1]}" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} {units[3]}" + (f" {hours} {units[2]}" if hours else "")


def clock_text(at: datetime, zone: ZoneInfo, now: datetime | None = None) -> str:
    """'07:12' in the province's zone, with the date ('07:12 26/11') when not today."""
    local = at.astimezone(zone)
    text = local.strftime("%H:%M")
    if now is not None and now.astimezone(zone).date() != local.date():
        text += local.strftime(" %d/%m")
        if now.astimezone(zone).year != local.year:
            text += local.strftime("/%Y")
    return text


# -- the model -----------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """An endpoint's state and its reasons (empty when ok)."""

    state: HealthState
    reasons: tuple[Reason, ...] = ()

    @cached_property
    def codes(self) -> frozenset[ReasonCode]:
        return frozenset(r.code for r in self.reasons)

    def same_as(self, state: HealthState, codes: Iterable[ReasonCode]) -> bool:
        """Whether nothing worth a transition changed (figures inside reasons may)."""
        return self.state is state and self.codes == frozenset(codes)


QUALITY_CODES = frozenset({ReasonCode.PACKET_LOSS, ReasonCode.HIGH_RTT,
                           ReasonCode.HIGH_JITTER, ReasonCode.LOW_FPS, ReasonCode.HIGH_CPU})


def _worst(values: Iterable[float | None], low_is_bad: bool) -> float | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return min(known) if low_is_bad else max(known)


def worse_of(site: CallFigures | None, bridge: CallFigures | None) -> CallFigures | None:
    """The call figures the health model judges: the worse of the site's and the bridge's
    view for loss, jitter, round-trip time (the higher) and frame rate (the lower); bit
    rates and the rest are the site's (the bridge's when the site sent none)."""
    if site is None or bridge is None:
        return site or bridge
    return CallFigures(
        conference=site.conference,
        rtt_ms=_worst((site.rtt_ms, bridge.rtt_ms), False),
        jitter_ms=_worst((site.jitter_ms, bridge.jitter_ms), False),
        packet_loss_ratio=_worst((site.packet_loss_ratio, bridge.packet_loss_ratio), False),
        bitrate_in_bps=site.bitrate_in_bps if site.bitrate_in_bps is not None
        else bridge.bitrate_out_bps,
        bitrate_out_bps=site.bitrate_out_bps if site.bitrate_out_bps is not None
        else bridge.bitrate_in_bps,
        fps=_worst((site.fps, bridge.fps), True),
        audio_level=site.audio_level,
        source=site.source,
    )


def _checks(report: Report, bridge: CallFigures | None, thresholds: Thresholds
            ) -> list[tuple[ReasonCode, float | None, float, bool]]:
    """(code, figure, limit, low is bad) of every quality check of an interval."""
    site = report.call
    # The bridge's frame rate is the site's camera: without a camera it says nothing new
    # (camera_missing says it already).
    if bridge is not None and not report.devices.camera:
        bridge = replace(bridge, fps=None)
    call = worse_of(site, bridge)
    rtt = call.rtt_ms if call is not None and call.rtt_ms is not None else report.network_rtt_ms
    checks: list[tuple[ReasonCode, float | None, float, bool]] = [
        (ReasonCode.HIGH_RTT, rtt, thresholds.rtt_ms_max, False),
        (ReasonCode.HIGH_CPU, report.cpu_percent, thresholds.cpu_percent_max, False),
    ]
    if call is not None:
        checks += [
            (ReasonCode.PACKET_LOSS, call.packet_loss_ratio, thresholds.packet_loss_max, False),
            (ReasonCode.HIGH_JITTER, call.jitter_ms, thresholds.jitter_ms_max, False),
        ]
        if thresholds.fps_min > 0:
            checks.append((ReasonCode.LOW_FPS, call.fps, thresholds.fps_min, True))
    return checks


def judge_quality(report: Report, bridge: CallFigures | None,
                  previous: QualityHold | frozenset[ReasonCode] | None,
                  thresholds: Thresholds, *, call_measured: bool = True) -> QualityHold:
    """The quality reasons after one interval: the site's `report` and the bridge's view
    of the same interval (None: none fresh), judged on the worse of the two.

    Hysteresis: a reason is raised when its figure is past the threshold; once active it
    stays while the figure is within `hysteresis` of the threshold, and clears only after
    `clear_intervals` good intervals in a row. An interval that does not measure an
    active reason's figure (null) counts as good: a reason needs evidence to stay, and two
    senders that each report part of the figures (the page the call, the agent the
    machine) neither flap nor hold a reason for ever. Leaving the call clears the call's
    reasons at once. `call_measured` False: the report's call figures are not new (kept
    from the other sender), so the call's reasons stay as they were.

    `previous` is the verdict of the interval before; a bare set of active codes (no
    memory of the intervals: a report stored by an older version, or a test) clears at
    the first good interval."""
    held: dict[ReasonCode, Reason] = {}
    if isinstance(previous, QualityHold):
        good_before = dict(previous.good)
        held = {r.code: r for r in previous.reasons}
    else:
        good_before = {code: thresholds.clear_intervals - 1
                       for code in (previous or frozenset()) if code in QUALITY_CODES}
    in_call = report.call is not None or bridge is not None
    h = thresholds.hysteresis
    reasons: list[Reason] = []
    good: list[tuple[ReasonCode, int]] = []
    for code, value, limit, low_is_bad in _checks(report, bridge, thresholds):
        active = code in good_before
        if not call_measured and in_call and code in _CALL_CODES:
            if active:  # no new interval of the call: as it was
                reasons.append(held.get(code, Reason(code, value=value, limit=limit)))
                good.append((code, good_before[code]))
            continue
        if not active:
            if value is not None and (value < limit if low_is_bad else value > limit):
                reasons.append(Reason(code, value=value, limit=limit))
                good.append((code, 0))
            continue
        if value is None:
            streak, reason = good_before[code] + 1, held.get(code, Reason(code, limit=limit))
        else:
            clear_level = limit * (1 + h) if low_is_bad else limit * (1 - h)
            still_bad = value < clear_level if low_is_bad else value > clear_level
            streak = 0 if still_bad else good_before[code] + 1
            reason = Reason(code, value=value, limit=limit)
        if streak < thresholds.clear_intervals:
            reasons.append(reason)
            good.append((code, streak))
    return QualityHold(tuple(reasons), tuple(good))


# The reasons judged on the call's figures (the round-trip time too, in a call).
_CALL_CODES = frozenset({ReasonCode.PACKET_LOSS, ReasonCode.HIGH_JITTER, ReasonCode.LOW_FPS,
                         ReasonCode.HIGH_RTT})


def evaluate(observation: Observation, now: datetime, thresholds: Thresholds) -> Health:
    """The health of one endpoint at `now`."""
    report = observation.report
    # No (recent) heartbeat but the event stream is held (an operator's browser console,
    # or an agent that stopped reporting): reachable and invitable, devices unverified.
    if report is None:
        if observation.stream_connected:
            return Health(HealthState.DEGRADED, (Reason(ReasonCode.CONSOLE_ONLY),))
        return Health(HealthState.OFFLINE, (Reason(ReasonCode.NEVER_SEEN),))
    silent = (now - report.received_at).total_seconds()
    if silent > thresholds.offline_after.total_seconds():
        no_heartbeat = Reason(ReasonCode.NO_HEARTBEAT, value=silent)
        if observation.stream_connected:
            return Health(HealthState.DEGRADED, (no_heartbeat, Reason(ReasonCode.CONSOLE_ONLY)))
        return Health(HealthState.OFFLINE, (no_heartbeat,))

    found: list[Reason] = []
    devices = report.devices
    for present, code in ((devices.camera, ReasonCode.CAMERA_MISSING),
                          (devices.microphone, ReasonCode.MICROPHONE_MISSING),
                          (devices.speaker, ReasonCode.SPEAKER_MISSING)):
        if not present:
            found.append(Reason(code))
    if not observation.stream_connected and report.source != "sip":
        found.append(Reason(ReasonCode.EVENT_STREAM_DOWN))

    quality = report.quality
    if quality is None:  # judged now, from the figures and the codes active before
        quality = judge_quality(report, None, observation.previous, thresholds)
    found += quality.reasons

    if abs(report.clock_offset_seconds) > thresholds.clock_skew_max.total_seconds():
        found.append(Reason(ReasonCode.CLOCK_SKEW, value=report.clock_offset_seconds))
    test_call = observation.test_call
    if (test_call is not None and not test_call.ok
            and now - test_call.at <= thresholds.test_call_max_age):
        found.append(Reason(ReasonCode.TEST_CALL_FAILED, at=test_call.at))
    found.sort(key=lambda r: _ORDER[r.code])
    return Health(HealthState.DEGRADED if found else HealthState.OK, tuple(found))


_ORDER = {code: i for i, code in enumerate(ReasonCode)}


def offline_since(report: Report | None, thresholds: Thresholds) -> datetime | None:
    """When a silent endpoint became offline by the rule: last heartbeat + offline_after."""
    return None if report is None else report.received_at + thresholds.offline_after
