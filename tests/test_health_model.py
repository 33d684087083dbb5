"""The health model: pure, on fixed datetimes."""

from __future__ import annotations

import dataclasses
import itertools
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitoring.health.codec import report_from_json, report_to_json
from monitoring.health.latest import Latest
from monitoring.health.model import (
    CallFigures,
    Devices,
    Health,
    HealthState,
    Observation,
    QualityHold,
    Reason,
    ReasonCode,
    Report,
    TestCall,
    Thresholds,
    clock_text,
    duration_text,
    evaluate,
    judge_quality,
    stream_connected,
    worse_of,
)
from monitoring.health.readiness import ParticipantHealth, readiness
from monitoring.responses import HealthReason
from vcbridge.core.http.render import body_of
from vcbridge.core.settings import Settings, SettingsError, load_settings

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)  # 10:00 in Hanoi
T = Thresholds()
ALL_DEVICES = Devices(True, True, True)


def report(ago: float = 0, *, devices: Devices = ALL_DEVICES, call: CallFigures | None = None,
           **kwargs: object) -> Report:
    return Report(NOW - timedelta(seconds=ago), devices, call=call,
                  **kwargs)  # type: ignore[arg-type]


def health(rep: Report | None, *, stream: bool = True, test_call: TestCall | None = None,
           previous: frozenset[ReasonCode] = frozenset(), now: datetime = NOW) -> Health:
    return evaluate(Observation(rep, stream, test_call, previous), now, T)


def codes(value: Health) -> list[str]:
    return [r.code.value for r in value.reasons]


def test_never_seen_and_silent_endpoints_are_offline_unless_their_console_is_open() -> None:
    assert health(None, stream=False) == Health(HealthState.OFFLINE,
                                                (Reason(ReasonCode.NEVER_SEEN),))
    # Only the operator's browser console: reachable and invitable, devices unverified.
    assert health(None) == Health(HealthState.DEGRADED, (Reason(ReasonCode.CONSOLE_ONLY),))
    assert health(report(30)).state is HealthState.OK  # exactly the limit: still on line
    silent = health(report(30.5), stream=False)
    assert silent.state is HealthState.OFFLINE
    assert silent.reasons == (Reason(ReasonCode.NO_HEARTBEAT, value=30.5),)
    assert silent.reasons[0].texts(ZONE) == ("không nhận được heartbeat trong 30 giây",
                                             "no heartbeat for 30 s")
    # A silent endpoint's last report no longer counts, whatever it said.
    broken = report(600, devices=Devices(False, False, False), cpu_percent=100.0)
    assert codes(health(broken, stream=False)) == ["no_heartbeat"]
    still_invitable = health(broken)
    assert still_invitable.state is HealthState.DEGRADED
    assert codes(still_invitable) == ["no_heartbeat", "console_only"]


def test_the_example_of_the_issue() -> None:
    offline = health(report(47), stream=False)
    assert offline.reasons[0].texts(ZONE)[1] == "no heartbeat for 47 s"


@pytest.mark.parametrize(("devices", "expected"), [
    (Devices(False, True, True), ["camera_missing"]),
    (Devices(True, False, True), ["microphone_missing"]),
    (Devices(True, True, False), ["speaker_missing"]),
    (Devices(False, False, False), ["camera_missing", "microphone_missing", "speaker_missing"]),
])
def test_missing_devices_degrade(devices: Devices, expected: list[str]) -> None:
    result = health(report(devices=devices))
    assert result.state is HealthState.DEGRADED and codes(result) == expected


def test_no_event_stream_degrades() -> None:
    assert codes(health(report(), stream=False)) == ["event_stream_down"]


@pytest.mark.parametrize(("figures", "code", "limit"), [
    ({"packet_loss_ratio": 0.02}, "packet_loss", 0.02),
    ({"rtt_ms": 300.0}, "high_rtt", 300.0),
    ({"jitter_ms": 30.0}, "high_jitter", 30.0),
])
def test_call_quality_limits_and_hysteresis(figures: dict[str, float], code: str,
                                            limit: float) -> None:
    (name, value), = figures.items()

    def at(v: float, previous: frozenset[ReasonCode] = frozenset()) -> list[str]:
        return codes(health(report(call=CallFigures(**{name: v})), previous=previous))

    assert at(value) == []  # at the limit: fine
    assert at(value * 1.01) == [code]
    active = frozenset({ReasonCode(code)})
    # Once degraded, it clears only 20 % inside the limit.
    assert at(value * 0.9, active) == [code]
    assert at(value * 0.81, active) == [code]
    assert at(value * 0.79, active) == []
    assert health(report(call=CallFigures(**{name: value * 2}))).reasons[0].limit == limit


def test_low_frame_rate_with_hysteresis() -> None:
    def at(fps: float, previous: frozenset[ReasonCode] = frozenset(),
           devices: Devices = ALL_DEVICES) -> list[str]:
        return codes(health(report(devices=devices, call=CallFigures(fps=fps)),
                            previous=previous))

    assert at(10) == [] and at(9.9) == ["low_fps"]
    assert at(11.9, frozenset({ReasonCode.LOW_FPS})) == ["low_fps"]
    assert at(12.1, frozenset({ReasonCode.LOW_FPS})) == []
    # The site's figure is the video it is shown, whether or not it has a camera itself.
    assert at(0, devices=Devices(False, True, True)) == ["camera_missing", "low_fps"]
    # Not in a call: no frame rate to judge.
    assert codes(health(report())) == []


# -- call quality: both views, and hysteresis over intervals (judge_quality) ------------


def judged(site: CallFigures | None, bridge: CallFigures | None = None,
           before: QualityHold | frozenset[ReasonCode] | None = None, *,
           devices: Devices = ALL_DEVICES, thresholds: Thresholds = T) -> QualityHold:
    return judge_quality(report(devices=devices, call=site), bridge, before, thresholds)


def test_the_worse_of_the_two_views_is_judged() -> None:
    site = CallFigures(rtt_ms=20.0, jitter_ms=4.0, packet_loss_ratio=0.001, fps=15.0,
                       bitrate_in_bps=900_000.0)
    bridge = CallFigures(rtt_ms=21.0, jitter_ms=45.0, packet_loss_ratio=0.06, fps=14.0,
                         bitrate_in_bps=800_000.0, bitrate_out_bps=950_000.0)
    hold = judged(site, bridge)
    assert [(r.code, r.value, r.limit) for r in hold.reasons] == [
        (ReasonCode.PACKET_LOSS, 0.06, 0.02), (ReasonCode.HIGH_JITTER, 45.0, 30.0)]
    # The lower frame rate of the two, whichever side saw it.
    assert [r.code for r in judged(CallFigures(fps=4.0), CallFigures(fps=15.0)).reasons] == [
        ReasonCode.LOW_FPS]
    assert judged(CallFigures(fps=15.0), CallFigures(fps=6.0)).reasons == (
        Reason(ReasonCode.LOW_FPS, 6.0, 10.0),)
    # The bridge alone (a site that sends no call figures) is judged too.
    assert [r.code for r in judged(None, CallFigures(packet_loss_ratio=0.05)).reasons] == [
        ReasonCode.PACKET_LOSS]
    # The bridge's frame rate is the site's camera: without one it says nothing.
    assert judged(None, CallFigures(fps=0.0), devices=Devices(False, True, True)).reasons == ()
    # What the API shows: the judged figures, the site's bit rates (the bridge's reversed
    # when the site has none).
    both = worse_of(site, bridge)
    assert both is not None and (both.rtt_ms, both.fps, both.bitrate_in_bps) == (
        21.0, 14.0, 900_000.0)
    bridge_only = worse_of(None, bridge)
    assert bridge_only is bridge
    assert worse_of(CallFigures(), bridge) == CallFigures(
        rtt_ms=21.0, jitter_ms=45.0, packet_loss_ratio=0.06, fps=14.0,
        bitrate_in_bps=950_000.0, bitrate_out_bps=800_000.0)
    assert worse_of(None, None) is None


def test_a_line_at_the_threshold_does_not_flap() -> None:
    """Loss measured around the 2 % limit, interval after interval: raised once, held
    while it hovers, cleared only after three good intervals in a row."""
    losses = [0.010, 0.021, 0.019, 0.023, 0.017, 0.020, 0.015, 0.021, 0.012, 0.010, 0.011,
              0.009, 0.021, 0.020]
    hold: QualityHold | None = None
    active = []
    for loss in losses:
        hold = judged(CallFigures(packet_loss_ratio=loss), before=hold)
        active.append(ReasonCode.PACKET_LOSS in hold.codes)
    assert active == [False, True, True, True, True, True, True, True, True, True, False,
                      False, True, True]
    # Without hysteresis (raised and cleared at the limit) the same line changes 8 times.
    changes = sum(a != b for a, b in itertools.pairwise(active))
    bare = [loss > 0.02 for loss in losses]
    assert (changes, sum(a != b for a, b in itertools.pairwise(bare))) == (3, 8)


def test_a_reason_clears_after_the_good_intervals_in_a_row() -> None:
    bad = judged(CallFigures(packet_loss_ratio=0.05))
    assert bad.reasons == (Reason(ReasonCode.PACKET_LOSS, 0.05, 0.02),) and bad.good == (
        (ReasonCode.PACKET_LOSS, 0),)
    good1 = judged(CallFigures(packet_loss_ratio=0.0), before=bad)
    assert good1.codes == {ReasonCode.PACKET_LOSS} and good1.good == (
        (ReasonCode.PACKET_LOSS, 1),)
    # The reason shows the figure now, not the one that raised it.
    assert good1.reasons[0].value == 0.0
    # A bad interval in between starts the count again.
    relapse = judged(CallFigures(packet_loss_ratio=0.018), before=good1)
    assert relapse.good == ((ReasonCode.PACKET_LOSS, 0),)
    hold = relapse
    for expected in (1, 2):
        hold = judged(CallFigures(packet_loss_ratio=0.001), before=hold)
        assert hold.good == ((ReasonCode.PACKET_LOSS, expected),)
    assert judged(CallFigures(packet_loss_ratio=0.001), before=hold).reasons == ()
    # Leaving the call (no figure at all) ends it at once.
    assert judged(None, before=bad).reasons == ()
    # One good interval is enough with clear_intervals = 1: the value band alone.
    once = Thresholds(clear_intervals=1)
    assert judged(CallFigures(packet_loss_ratio=0.001), before=bad, thresholds=once
                  ).reasons == ()
    assert judged(CallFigures(packet_loss_ratio=0.017), before=bad, thresholds=once
                  ).reasons != ()
    # A bare set of codes (no memory of intervals) clears at the first good interval.
    assert judged(CallFigures(packet_loss_ratio=0.001),
                  before=frozenset({ReasonCode.PACKET_LOSS})).reasons == ()


@pytest.mark.parametrize(("figure", "bad", "hover", "good", "code"), [
    ("rtt_ms", 320.0, 250.0, 200.0, ReasonCode.HIGH_RTT),
    ("jitter_ms", 31.0, 25.0, 20.0, ReasonCode.HIGH_JITTER),
    ("fps", 8.0, 11.5, 14.0, ReasonCode.LOW_FPS),
])
def test_every_call_figure_has_the_same_hysteresis(figure: str, bad: float, hover: float,
                                                   good: float, code: ReasonCode) -> None:
    hold = judged(None, CallFigures(**{figure: bad}))
    assert hold.codes == {code}
    for _ in range(5):  # inside the limit, not past the clear level: held
        hold = judged(None, CallFigures(**{figure: hover}), hold)
        assert hold.codes == {code}
    for _ in range(2):
        hold = judged(None, CallFigures(**{figure: good}), hold)
        assert hold.codes == {code}
    assert judged(None, CallFigures(**{figure: good}), hold).codes == frozenset()


def test_two_senders_that_each_report_part_neither_flap_nor_stick() -> None:
    """The operator's page reports the call (no CPU), the agent its machine (its call kept
    from the page's last report): each heartbeat judges only what it measured."""
    page = CallFigures(packet_loss_ratio=0.05, source="browser")

    def agent(cpu: float, before: QualityHold) -> QualityHold:
        return judge_quality(report(cpu_percent=cpu, call=page), None, before, T,
                             call_measured=False)

    def page_only(loss: float, before: QualityHold) -> QualityHold:
        return judge_quality(report(call=dataclasses.replace(page, packet_loss_ratio=loss)),
                             None, before, T)

    hold = judge_quality(report(call=page), None, None, T)
    assert hold.good == ((ReasonCode.PACKET_LOSS, 0),)
    sequence = []
    for step in range(8):  # the CPU busy throughout, the loss gone from the second page
        hold = agent(97.0, hold) if step % 2 == 0 else page_only(0.001, hold)
        sequence.append(sorted(c.value for c in hold.codes))
    # high_cpu holds across the page's reports (which say nothing of the CPU: they count
    # toward clearing, but the agent's next report is bad again); the page's loss clears
    # after three of its own good reports, the agent's copies of the call not counting.
    assert sequence == [["high_cpu", "packet_loss"], ["high_cpu", "packet_loss"],
                        ["high_cpu", "packet_loss"], ["high_cpu", "packet_loss"],
                        ["high_cpu", "packet_loss"], ["high_cpu"], ["high_cpu"],
                        ["high_cpu"]]
    # An agent that stops reporting its CPU does not hold high_cpu for ever.
    for _ in range(3):
        hold = page_only(0.001, hold)
    assert hold.codes == frozenset()


def test_the_verdict_travels_with_the_report() -> None:
    """Whoever evaluates a report (the sweep, the API, another process) reads the verdict
    of its interval, not the raw figures: a reason held by the hysteresis stays held."""
    held = judged(CallFigures(packet_loss_ratio=0.001),
                  before=judged(CallFigures(packet_loss_ratio=0.05)))
    rep = dataclasses.replace(report(call=CallFigures(packet_loss_ratio=0.001)), quality=held)
    assert codes(health(rep)) == ["packet_loss"]
    assert report_from_json(report_to_json(rep)) == rep
    # Stored by an older version (no verdict): judged on its figures.
    old = report_to_json(rep) | {"quality": None}
    restored = report_from_json(old)
    assert restored is not None and codes(health(restored)) == []


def test_rtt_outside_calls_is_the_network_rtt() -> None:
    assert codes(health(report(network_rtt_ms=350.0))) == ["high_rtt"]
    in_a_call = report(network_rtt_ms=350.0, call=CallFigures(rtt_ms=40.0))
    assert codes(health(in_a_call)) == []


def test_cpu_and_clock_skew() -> None:
    assert codes(health(report(cpu_percent=90.0))) == []
    assert codes(health(report(cpu_percent=95.0))) == ["high_cpu"]
    assert codes(health(report(clock_offset_seconds=300.0))) == []
    assert codes(health(report(clock_offset_seconds=-301.0))) == ["clock_skew"]
    skew = health(report(clock_offset_seconds=-3 * 3600 - 120)).reasons[0]
    assert skew.texts(ZONE) == ("đồng hồ lệch 3 giờ 2 phút so với máy chủ (kiểm tra NTP)",
                                "clock off by 3 h 2 min from the server (check NTP)")


def test_failed_test_call_degrades_for_an_hour() -> None:
    failed = TestCall(ok=False, at=NOW - timedelta(minutes=59))
    result = health(report(), test_call=failed)
    assert codes(result) == ["test_call_failed"]
    assert result.reasons[0].texts(ZONE) == ("gọi thử thất bại lúc 09:01",
                                             "test call failed at 09:01")
    assert codes(health(report(), test_call=dataclasses.replace(
        failed, at=NOW - timedelta(minutes=61)))) == []
    assert codes(health(report(), test_call=dataclasses.replace(failed, ok=True))) == []


def test_reasons_come_in_a_stable_order() -> None:
    everything = report(devices=Devices(False, False, False), cpu_percent=99.0,
                        clock_offset_seconds=900.0,
                        call=CallFigures(rtt_ms=999.0, jitter_ms=99.0, packet_loss_ratio=0.5,
                                         fps=1.0))
    result = health(everything, stream=False,
                    test_call=TestCall(ok=False, at=NOW - timedelta(minutes=1)))
    assert codes(result) == ["camera_missing", "microphone_missing", "speaker_missing",
                             "event_stream_down", "packet_loss", "high_rtt", "high_jitter",
                             "low_fps", "high_cpu", "clock_skew", "test_call_failed"]


def test_every_reason_reads_in_both_languages() -> None:
    for code in ReasonCode:
        reason = Reason(code, value=12.5, limit=10.0, at=NOW)
        vi, en = reason.texts(ZONE, NOW)
        assert vi and en and vi != en, code
        assert "{" not in vi + en, code
        assert unicodedata.is_normalized("NFC", vi), code
    assert Reason(ReasonCode.CAMERA_MISSING).texts(ZONE) == ("thiếu camera", "camera missing")
    assert Reason(ReasonCode.MICROPHONE_MISSING).texts(ZONE)[0] == "thiếu micrô"
    assert Reason(ReasonCode.PACKET_LOSS, 0.052, 0.02).texts(ZONE) == (
        "mất gói 5,2 % (ngưỡng 2 %)", "packet loss 5.2 % (limit 2 %)")
    assert Reason(ReasonCode.HIGH_RTT, 412.7, 300).texts(ZONE)[1] == (
        "round-trip time 413 ms (limit 300 ms)")


def test_reasons_round_trip_through_storage() -> None:
    reasons = [Reason(ReasonCode.PACKET_LOSS, 0.05, 0.02),
               Reason(ReasonCode.TEST_CALL_FAILED, at=NOW), Reason(ReasonCode.NEVER_SEEN)]
    for reason in reasons:
        assert Reason.from_store(reason.to_store()) == reason
    assert Reason.from_store({"code": "from_a_newer_version"}) is None
    body = body_of(HealthReason.of(Reason(ReasonCode.TEST_CALL_FAILED, at=NOW), ZONE))
    assert body["at"] == "2026-11-27T10:00:00+07:00"
    # A figure the reason lacks is left out of its API form, not sent as null.
    assert set(body_of(HealthReason.of(Reason(ReasonCode.PACKET_LOSS, 0.05, 0.02), ZONE))) == {
        "code", "vi", "en", "value", "limit"}


@pytest.mark.parametrize(("seconds", "en", "vi"), [
    (0, "0 s", "0 giây"), (47, "47 s", "47 giây"), (119.6, "2 min", "2 phút"),
    (167, "2 min 47 s", "2 phút 47 giây"), (3600, "1 h", "1 giờ"),
    (3 * 3600 + 12 * 60 + 5, "3 h 12 min", "3 giờ 12 phút"),
    (50 * 3600, "2 d 2 h", "2 ngày 2 giờ"), (-420, "7 min", "7 phút"),
])
def test_durations(seconds: float, en: str, vi: str) -> None:
    assert duration_text(seconds, "en") == en
    assert duration_text(seconds, "vi") == vi


def test_clock_text_shows_the_date_of_another_day() -> None:
    at = datetime(2026, 11, 27, 0, 12, tzinfo=UTC)
    assert clock_text(at, ZONE, NOW) == "07:12"
    assert clock_text(at - timedelta(days=1), ZONE, NOW) == "07:12 26/11"
    assert clock_text(at - timedelta(days=365), ZONE, NOW) == "07:12 27/11/2025"


def test_event_stream_presence_with_grace() -> None:
    stale, grace = timedelta(seconds=60), timedelta(seconds=30)
    assert stream_connected(1, NOW - timedelta(seconds=59), NOW, stale, grace)
    assert not stream_connected(1, NOW - timedelta(seconds=60), NOW, stale, grace)
    assert stream_connected(0, NOW - timedelta(seconds=29), NOW, stale, grace)  # reconnecting
    assert not stream_connected(0, NOW - timedelta(seconds=31), NOW, stale, grace)
    assert not stream_connected(None, None, NOW, stale, grace)


def _participant(code: str, result: Health, since: datetime | None = None) -> ParticipantHealth:
    return ParticipantHealth(code, code.title(), result, since)


def test_readiness_summary() -> None:
    ok = Health(HealthState.OK)
    people = [
        _participant("UBND-TINH", ok),
        _participant("HUYEN-MUONG-LAT", health(report(3600), stream=False),
                     datetime(2026, 11, 27, 0, 12, tzinfo=UTC)),
        _participant("HUYEN-QUAN-SON", health(report(devices=Devices(False, True, True)))),
        _participant("HUYEN-NGA-SON", health(report(cpu_percent=99.0))),  # a warning only
        _participant("HUYEN-YEN-DINH", health(None, stream=False)),
        _participant("HUYEN-HA-TRUNG", health(report(), stream=False)),
        _participant("HUYEN-THO-XUAN", health(None)),  # the operator's console only: ready
    ]
    result = readiness(people, NOW, ZONE)
    assert (result.ready, result.total) == (3, 7)
    assert result.summary_en == (
        "3/7 ready; HUYEN-MUONG-LAT offline since 07:12; HUYEN-QUAN-SON camera missing; "
        "HUYEN-YEN-DINH never connected; HUYEN-HA-TRUNG cannot be invited (no event stream)")
    assert result.summary_vi == (
        "3/7 điểm cầu sẵn sàng; HUYEN-MUONG-LAT mất kết nối từ 07:12; "
        "HUYEN-QUAN-SON thiếu camera; HUYEN-YEN-DINH chưa từng kết nối; "
        "HUYEN-HA-TRUNG không nhận được lời mời (mất luồng sự kiện)")
    nga_son = result.items[3]
    assert nga_son.ready and [w.code for w in nga_son.warnings] == [ReasonCode.HIGH_CPU]
    tho_xuan = result.items[6]
    assert tho_xuan.ready and [w.code for w in tho_xuan.warnings] == [ReasonCode.CONSOLE_ONLY]
    assert readiness([], NOW, ZONE).summary_en == "0/0 ready"
    assert readiness(people[:1], NOW, ZONE).summary_vi == "1/1 điểm cầu sẵn sàng"


def test_thresholds_from_settings(tmp_path: object) -> None:
    settings = Settings(health_offline_after_seconds=45, health_packet_loss_max=0.05,
                        health_fps_min=0)
    thresholds = Thresholds.from_settings(settings)
    assert thresholds.offline_after == timedelta(seconds=45)
    assert thresholds.packet_loss_max == 0.05
    # fps_min 0: frame rate not checked.
    assert evaluate(Observation(report(call=CallFigures(fps=0.5)), True), NOW,
                    thresholds).state is HealthState.OK
    with pytest.raises(dataclasses.FrozenInstanceError):
        thresholds.rtt_ms_max = 1  # type: ignore[misc]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"health_offline_after_seconds": 10, "health_persist_seconds": 9},
     "health_persist_seconds + health_sweep_seconds"),
    ({"health_offline_after_seconds": 8, "health_heartbeat_interval_seconds": 5,
      "health_persist_seconds": 1, "health_sweep_seconds": 1}, "at least twice"),
    ({"health_packet_loss_max": 1.5}, "health_packet_loss_max"),
    ({"health_hysteresis": 1}, "health_hysteresis"),
])
def test_bad_health_settings_are_refused(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(**overrides)


def test_a_report_reads_back_from_its_stored_form() -> None:
    report = Report(received_at=datetime(2026, 11, 27, 3, 0, tzinfo=UTC),
                    devices=Devices(True, False, True), clock_offset_seconds=1.25,
                    cpu_percent=12.5, network_rtt_ms=3.5,
                    call=CallFigures(conference=7, rtt_ms=40.0, packet_loss_ratio=0.01),
                    sent_at=datetime(2026, 11, 27, 2, 59, 58, tzinfo=UTC),
                    agent_version="0.1.0", network_interface="eth0")
    assert report_from_json(report_to_json(report)) == report
    stored = Latest(report).report_json
    assert stored is not None and stored["network"] == {"interface": "eth0", "rtt_ms": 3.5}
    assert stored["sent_at"] == "2026-11-27T02:59:58+00:00"
    assert Latest().report_json is None
