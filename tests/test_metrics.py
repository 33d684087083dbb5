"""Prometheus metrics: the real app scraped after real activity, checked by promtool;
the alerting rules and their unit tests; the Grafana dashboard; the recorder's rules."""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bridge.signaling import ROOMS
from monitoring import wiring
from monitoring.health.model import HealthState
from monitoring.health.monitor import MONITOR
from monitoring.metrics import routes as metrics_routes
from monitoring.metrics.endpoint_gauges import EndpointGauge
from monitoring.metrics.families import QUALITY_FIELDS, Metrics, Quality
from monitoring.metrics.media import MediaSampler, quality_between
from monitoring.metrics.recorder import MetricsRecorder
from monitoring.metrics.refresher import JOINED
from monitoring.metrics.site_quality import SiteQuality
from monitoring.metrics.status import EndpointStatus
from scheduler.connect_policy import ConnectState
from scheduler.lifecycle_wiring import RUNNER
from tests.conftest import Client
from tests.health_support import heartbeat, in_call
from tests.support import ADMIN_PASSWORD, bearer, login, skip_or_fail
from vcbridge.app import create_app
from vcbridge.core.clock import FixedClock
from vcbridge.core.events import BusEvent, EventBus
from vcbridge.core.http.errors import error_middleware
from vcbridge.core.media_counters import MediaCounters, MixCounters
from vcbridge.core.settings import Settings
from vcbridge.room_reports import RoomReports

MONITORING = Path(__file__).resolve().parent.parent / "monitoring"
ROSTER_SIZE = 31
START = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 08:00 in Hanoi

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

FAMILIES = {
    "vcbridge_endpoint_up", "vcbridge_endpoint_health_state", "vcbridge_endpoint_ready",
    "vcbridge_endpoint_last_heartbeat_timestamp_seconds",
    "vcbridge_endpoint_round_trip_time_seconds", "vcbridge_endpoint_jitter_seconds",
    "vcbridge_endpoint_packet_loss_ratio", "vcbridge_endpoint_receive_bytes_per_second",
    "vcbridge_endpoint_send_bytes_per_second", "vcbridge_endpoint_frames_per_second",
    "vcbridge_endpoint_in_conference", "vcbridge_endpoint_next_conference_start_timestamp_seconds",
    "vcbridge_conferences", "vcbridge_participants_connected", "vcbridge_join_duration_seconds",
    "vcbridge_scheduler_transition_lateness_seconds", "vcbridge_invitations",
    "vcbridge_redials", "vcbridge_scheduler_leader", "vcbridge_http_requests",
    "vcbridge_http_request_duration_seconds", "vcbridge_heartbeats_dropped",
    "vcbridge_login_failures", "vcbridge_logins_refused",
    "vcbridge_health_max_packet_loss_ratio", "vcbridge_health_max_round_trip_time_seconds",
    "vcbridge_health_max_jitter_seconds", "vcbridge_health_min_frames_per_second",
    "vcbridge_audio_mix_frames", "vcbridge_audio_mix_skipped_frames",
    "vcbridge_audio_mix_encodes", "vcbridge_audio_mix_forwarded", "vcbridge_audio_mix_packets",
    # Process metrics, from the collectors registered on the app's own registry.
    "process_cpu_seconds", "process_resident_memory_bytes", "python_gc_collections",
    "python_info",
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        skip_or_fail("promtool not installed (Debian package `prometheus`)")
    assert path is not None
    return path


def run_promtool(*args: str, stdin: str | None = None, cwd: Path = MONITORING
                 ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, timeout=60, check=False)


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), math.nan)


def by_name(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


async def scrape(client: Client) -> tuple[str, Samples]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    text = await response.text()
    return text, parse(text)


async def until(client: Client, check: Callable[[Samples], bool], what: str,
                timeout: float = 10.0) -> Samples:
    """Scrape until `check` holds. The recorder follows the bus in the background; the
    database is read again before each scrape rather than waiting for the next refresh."""
    deadline = asyncio.get_running_loop().time() + timeout
    refresher = client.app[wiring.MONITORING].refresher
    assert refresher is not None
    while True:
        await refresher.refresh()
        _, samples = await scrape(client)
        if check(samples):
            return samples
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"metrics never showed: {what}")
        await asyncio.sleep(0.05)


MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def monitored(aiohttp_client: MakeClient, settings: Settings, clock: FixedClock
              ) -> Callable[[], Awaitable[Client]]:
    """The real app (with its monitoring) and its scheduler."""

    async def make() -> Client:
        app = create_app(settings.model_copy(update={"scheduler_enabled": True}), clock=clock)
        return await aiohttp_client(app)

    return make


async def test_scrape_after_activity(
    monitored: Callable[[], Awaitable[Client]], clock: FixedClock
) -> None:
    promtool()  # skip (or fail in CI) before the work, not after
    client = await monitored()
    app = client.app
    admin = bearer(await login(client, "admin", ADMIN_PASSWORD))

    # -- HTTP activity and a booked conference ---------------------------------------
    response = await client.post("/api/v1/conferences", headers=admin, json={
        "title": "Giao ban tuần", "chair": "UBND-TINH",
        "participants": ["UBND-TINH", "HUYEN-NGA-SON"],
        "start": "2026-12-01T08:00:00+07:00", "end": "2026-12-01T10:00:00+07:00",
    })
    assert response.status == 201, await response.text()
    conference = (await response.json())["id"]
    for _ in range(2):
        assert (await client.get(f"/api/v1/conferences/{conference}", headers=admin)).status == 200
    assert (await client.get("/api/v1/no-such-thing")).status == 404

    # -- an endpoint agent on line: event stream and a heartbeat (the health model) ----
    response = await client.post("/api/v1/endpoints/SO-TTTT/tokens", headers=admin,
                                 json={"scope": "agent", "label": "metrics test"})
    assert response.status == 201, await response.text()
    agent = bearer((await response.json())["token"])
    ws = await client.ws_connect("/api/v1/events", headers=agent)
    assert (await ws.receive_json(timeout=5))["type"] == "stream.ready"
    response = await client.post("/api/v1/endpoints/SO-TTTT/heartbeat", headers=agent,
                                 json=heartbeat(at=clock.now(), call=in_call(loss=0.004)))
    assert response.status == 200, await response.text()
    await app[MONITOR].sweep()  # the health board the metrics read

    samples = await until(client, lambda s: (
        value(s, "vcbridge_scheduler_leader") == 1
        and value(s, "vcbridge_conferences", state="scheduled") == 1
        and value(s, "vcbridge_endpoint_up", endpoint="SO-TTTT") == 1
    ), "the leader, the booked conference and the agent on line")
    assert value(s := samples, "vcbridge_endpoint_health_state", endpoint="SO-TTTT",
                 state="ok") == 1
    assert value(s, "vcbridge_endpoint_ready", endpoint="SO-TTTT") == 1
    assert value(s, "vcbridge_endpoint_last_heartbeat_timestamp_seconds",
                 endpoint="SO-TTTT") == clock.now().timestamp()
    # The site's own figures of its call (its heartbeat), labelled by who measured them;
    # no room of this process carries its media, so the bridge's side is NaN.
    site = {"endpoint": "SO-TTTT", "side": "site"}
    assert value(s, "vcbridge_endpoint_packet_loss_ratio", **site) == 0.004
    assert value(s, "vcbridge_endpoint_round_trip_time_seconds", **site) == 0.04
    assert value(s, "vcbridge_endpoint_jitter_seconds", **site) == 0.005
    assert value(s, "vcbridge_endpoint_frames_per_second", **site) == 25
    assert value(s, "vcbridge_endpoint_receive_bytes_per_second", **site) == 1_500_000 / 8
    assert value(s, "vcbridge_endpoint_send_bytes_per_second", **site) == 1_200_000 / 8
    assert math.isnan(value(s, "vcbridge_endpoint_packet_loss_ratio", endpoint="SO-TTTT",
                            side="bridge"))
    # The health model's limits, for the alert rules (the settings' defaults here).
    assert value(s, "vcbridge_health_max_packet_loss_ratio") == 0.02
    assert value(s, "vcbridge_health_max_round_trip_time_seconds") == 0.3
    assert value(s, "vcbridge_health_max_jitter_seconds") == 0.03
    assert value(s, "vcbridge_health_min_frames_per_second") == 10
    assert value(s, "vcbridge_endpoint_up", endpoint="TINH-UY") == 0
    assert value(s, "vcbridge_endpoint_health_state", endpoint="TINH-UY", state="offline") == 1
    for code in ("UBND-TINH", "HUYEN-NGA-SON"):
        assert value(s, "vcbridge_endpoint_next_conference_start_timestamp_seconds",
                     endpoint=code) == START.timestamp()
    assert math.isnan(value(s, "vcbridge_endpoint_next_conference_start_timestamp_seconds",
                            endpoint="TINH-UY"))
    await ws.close()

    # -- the real lifecycle: open and live, 15 min 2 s and 2 s late ----------------------
    t0 = START + timedelta(seconds=2)
    clock.set(t0)
    await app[RUNNER].sync(conference)
    samples = await until(client, lambda s: (
        value(s, "vcbridge_invitations_total") == 2
        and value(s, "vcbridge_conferences", state="live") == 1
    ), "both participants invited, the conference live")
    lateness = "vcbridge_scheduler_transition_lateness_seconds"
    assert value(samples, f"{lateness}_count", transition="open") == 1
    assert value(samples, f"{lateness}_sum", transition="open") == pytest.approx(902.0)
    assert value(samples, f"{lateness}_count", transition="live") == 1
    assert value(samples, f"{lateness}_sum", transition="live") == pytest.approx(2.0)
    assert value(samples, f"{lateness}_bucket", transition="live", le="2.5") == 1
    assert value(samples, f"{lateness}_bucket", transition="live", le="1.0") == 0
    assert value(samples, f"{lateness}_count", transition="end") == 0
    assert value(samples, "vcbridge_conferences", state="scheduled") == 0
    assert value(samples, "vcbridge_redials_total") == 0
    # Its room is open in this process: its mix's series exist from then on. Once it
    # runs (a site's connection starts it), it mixes frames with nobody speaking so far,
    # which cost no encode; nothing skipped.
    samples = await until(client, lambda s: value(
        s, "vcbridge_audio_mix_frames_total", speakers="0") == 0, "the room's mix")
    app[ROOMS].rooms[conference].start()
    samples = await until(client, lambda s: value(
        s, "vcbridge_audio_mix_frames_total", speakers="0") > 0, "the room's mix ticking")
    assert value(samples, "vcbridge_audio_mix_frames_total", speakers="1") == 0
    assert value(samples, "vcbridge_audio_mix_encodes_total") == 0
    assert value(samples, "vcbridge_audio_mix_skipped_frames_total") == 0
    assert value(samples, "vcbridge_audio_mix_packets_total", fate="decoded") == 0

    # -- roll call: joined after 12 s, dropped, redialled, joined again ------------------
    reports = RoomReports(app)
    clock.set(t0 + timedelta(seconds=12))
    await reports.attendance(conference, "UBND-TINH", "joined")
    samples = await until(client, lambda s: (
        value(s, "vcbridge_endpoint_in_conference", endpoint="UBND-TINH") == 1
        and value(s, "vcbridge_join_duration_seconds_count") == 1
    ), "UBND-TINH joined")
    assert value(samples, "vcbridge_join_duration_seconds_sum") == pytest.approx(12.0)
    assert value(samples, "vcbridge_participants_connected") == 1

    clock.set(t0 + timedelta(seconds=13))
    await reports.attendance(conference, "UBND-TINH", "dropped")
    await until(client, lambda s: (
        value(s, "vcbridge_endpoint_in_conference", endpoint="UBND-TINH") == 0
        and value(s, "vcbridge_participants_connected") == 0
    ), "UBND-TINH dropped")

    # The drop is redialled after 30 s: attempt 1 again, but a redial (reason "dropped").
    clock.set(t0 + timedelta(seconds=44))
    await until(client, lambda s: value(s, "vcbridge_redials_total") == 1, "the redial")
    clock.set(t0 + timedelta(seconds=46))
    await reports.attendance(conference, "UBND-TINH", "joined")
    samples = await until(client, lambda s: value(s, "vcbridge_join_duration_seconds_count") == 2,
                          "the rejoin")
    assert value(samples, "vcbridge_join_duration_seconds_sum") == pytest.approx(14.0)
    assert value(samples, "vcbridge_invitations_total") == 3

    # -- the room closes: its mix stays counted (the counters only grow) ----------------
    _, samples = await scrape(client)
    mixed = value(samples, "vcbridge_audio_mix_frames_total", speakers="0")
    await app[ROOMS].close_room(conference, "ended")
    assert conference not in app[ROOMS].rooms
    _, samples = await scrape(client)
    assert value(samples, "vcbridge_audio_mix_frames_total", speakers="0") >= mixed > 0

    # -- the final scrape --------------------------------------------------------------
    text, samples = await scrape(client)
    checked = run_promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == ""

    families = {family.name for family in text_string_to_metric_families(text)}
    assert families >= FAMILIES, FAMILIES - families

    up = by_name(samples, "vcbridge_endpoint_up")
    codes = {dict(labels)["endpoint"] for labels in up}
    assert len(codes) == ROSTER_SIZE
    for name in ("vcbridge_endpoint_packet_loss_ratio", "vcbridge_endpoint_ready",
                 "vcbridge_endpoint_in_conference",
                 "vcbridge_endpoint_next_conference_start_timestamp_seconds"):
        assert {dict(labels)["endpoint"] for labels in by_name(samples, name)} == codes, name
    # Every quality family has both sides of every endpoint.
    sides = {(dict(labels)["endpoint"], dict(labels)["side"])
             for labels in by_name(samples, "vcbridge_endpoint_frames_per_second")}
    assert sides == {(code, side) for code in codes for side in ("site", "bridge")}
    states = by_name(samples, "vcbridge_endpoint_health_state")
    assert len(states) == 3 * ROSTER_SIZE
    for code in codes:
        current = [dict(labels)["state"] for labels, v in states.items()
                   if dict(labels)["endpoint"] == code and v == 1]
        assert len(current) == 1, (code, current)

    # Routes are the router's canonical paths, never raw paths; unknown ones are "other".
    requests = by_name(samples, "vcbridge_http_requests_total")
    routes = {dict(labels)["route"] for labels in requests}
    canonical = {route.resource.canonical for route in app.router.routes()
                 if route.resource is not None}
    assert routes <= canonical | {"other"}, routes - canonical
    assert value(samples, "vcbridge_http_requests_total", route="/api/v1/conferences/{id}",
                 method="GET", status="200") == 2
    assert value(samples, "vcbridge_http_requests_total", route="/api/v1/conferences",
                 method="POST", status="201") == 1
    assert value(samples, "vcbridge_http_requests_total", route="other", method="GET",
                 status="404") == 1
    assert value(samples, "vcbridge_http_request_duration_seconds_count",
                 route="/api/v1/conferences/{id}", method="GET") == 2
    # The event stream is counted with its 101 but kept out of the latency histogram.
    assert value(samples, "vcbridge_http_requests_total", route="/api/v1/events",
                 method="GET", status="101") == 1
    assert math.isnan(value(samples, "vcbridge_http_request_duration_seconds_count",
                            route="/api/v1/events", method="GET"))
    label_names = {name for (_, labels) in samples for name, _ in labels}
    assert label_names <= {"endpoint", "state", "transition", "route", "method", "status",
                           "reason", "le", "implementation", "major", "minor",
                           "patchlevel", "version", "generation", "side", "speakers",
                           "fate"}, label_names


async def test_metrics_can_require_a_token(aiohttp_client: MakeClient) -> None:
    app = web.Application(middlewares=[error_middleware])  # the JSON error contract
    metrics = Metrics()
    metrics.set_roster(["TINH-UY"])
    metrics_routes.setup_routes(app, metrics, token="scrape-secret")
    client = await aiohttp_client(app)
    refused = await client.get("/metrics")
    assert refused.status == 401
    assert (await refused.json())["error"]["code"] == "unauthorized"
    wrong = await client.get("/metrics", headers=bearer("nope"))
    assert wrong.status == 401
    allowed = await client.get("/metrics", headers=bearer("scrape-secret"))
    assert allowed.status == 200
    assert "vcbridge_endpoint_up" in await allowed.text()


async def test_metrics_is_public_by_default(
    monitored: Callable[[], Awaitable[Client]],
) -> None:
    client = await monitored()
    _, samples = await scrape(client)
    assert len(by_name(samples, "vcbridge_endpoint_up")) == ROSTER_SIZE


def test_alert_rules_check_and_unit_tests_pass() -> None:
    checked = run_promtool("check", "rules", "prometheus-rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "12 rules found" in checked.stdout
    tested = run_promtool("test", "rules", "prometheus-rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tests = (MONITORING / "prometheus-rules.test.yml").read_text(encoding="utf-8")
    for alert in ("VcbridgeEndpointOffline", "VcbridgeEndpointPacketLoss",
                  "VcbridgeEndpointHighRoundTripTime", "VcbridgeEndpointHighJitter",
                  "VcbridgeEndpointLowFrameRate",
                  "VcbridgeEndpointNotReadyBeforeConference", "VcbridgeSchedulerLeaderMissing",
                  "VcbridgeLoginFailuresHigh", "VcbridgeLoginsRefused",
                  "VcbridgeSipGatewayDown", "VcbridgeSipGatewayNotRegistered",
                  "VcbridgeAudioFramesSkipped"):
        assert f"alertname: {alert}" in tests
    # The call-quality alerts compare with the limits the service exports from its
    # settings, never with a number of their own: one place to change a limit.
    rules = yaml.safe_load((MONITORING / "prometheus-rules.yml").read_text(encoding="utf-8"))
    [quality] = [g for g in rules["groups"] if g["name"] == "vcbridge-call-quality"]
    limits = {"VcbridgeEndpointPacketLoss": ("packet_loss_ratio", "max_packet_loss_ratio"),
              "VcbridgeEndpointHighRoundTripTime": ("round_trip_time_seconds",
                                                    "max_round_trip_time_seconds"),
              "VcbridgeEndpointHighJitter": ("jitter_seconds", "max_jitter_seconds"),
              "VcbridgeEndpointLowFrameRate": ("frames_per_second", "min_frames_per_second")}
    assert {rule["alert"] for rule in quality["rules"]} == set(limits)
    for rule in quality["rules"]:
        figure, limit = limits[rule["alert"]]
        assert f"vcbridge_endpoint_{figure})" in rule["expr"], rule["alert"]
        assert f"vcbridge_health_{limit})" in rule["expr"], rule["alert"]
        assert not re.search(r"[<>]=?\s*[0-9]", rule["expr"].split("and on")[0]), rule["alert"]
        assert rule["keep_firing_for"] and rule["for"], rule["alert"]
    config = run_promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_grafana_dashboard(tmp_path: Path) -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["endpoint"]["multi"] and variables["endpoint"]["includeAll"]
    assert not variables["focus"]["multi"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    [tiles] = [p for p in panels if p.get("repeat") == "endpoint"]
    assert tiles["type"] == "stat"
    assert any(p["type"] == "row" and "$focus" in p["title"] for p in panels)
    quality = " ".join(t["expr"] for p in panels for t in p.get("targets", [])
                       if "$focus" in t["expr"])
    for name in ("round_trip_time_seconds", "jitter_seconds", "packet_loss_ratio",
                 "receive_bytes_per_second", "send_bytes_per_second", "frames_per_second"):
        # The same series as the metrics, each side on its own line.
        assert f"max by (side) (vcbridge_endpoint_{name}" in quality, name
    limits = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    for name in ("max_packet_loss_ratio", "max_round_trip_time_seconds", "max_jitter_seconds",
                 "min_frames_per_second"):
        assert f"vcbridge_health_{name}" in limits, name
    # The bridge's own trouble: the audio frames a process skipped (it fell behind).
    assert "vcbridge_audio_mix_skipped_frames_total" in limits

    # Every query is valid PromQL (promtool parses it as a recording rule) and names
    # only metrics the service exports.
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    exprs += [v["definition"].removeprefix("label_values(").split(",")[0]
              for v in variables.values() if v["type"] == "query"]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}",
         "expr": e.replace("$endpoint", "TINH-UY").replace("$focus", "TINH-UY")}
        for i, e in enumerate(exprs)]}]}
    (tmp_path / "dashboard-rules.yml").write_text(json.dumps(rules), encoding="utf-8")
    checked = run_promtool("check", "rules", "dashboard-rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    metrics = Metrics()
    metrics.set_roster(["TINH-UY"])
    metrics.watch_audio_mixes(MixCounters)  # a bridge process's families too
    exported = set(re.findall(r"^# HELP (\S+)", metrics.render().decode(), re.MULTILINE))
    exported.add("vcbridge_conferences")
    referenced = set(re.findall(r"\bvcbridge_[a-z_]+", " ".join(exprs)))
    assert referenced and referenced <= exported, referenced - exported


# -- the recorder, the sampler and the metrics' own rules (no app) ---------------------------


def event(seq: int, type_: str, at: datetime, *, conference: int | None = 7,
          endpoint: str | None = None, **data: Any) -> BusEvent:
    return BusEvent(seq, at, type_, conference, endpoint, (), data)


def recorder_for(metrics: Metrics, **options: Any) -> MetricsRecorder:
    return MetricsRecorder(metrics, cast(EventBus, None), **options)


def test_the_attendance_state_name_matches_the_connect_policy() -> None:
    assert ConnectState.JOINED.value == JOINED


def test_only_the_leader_counts_events_but_every_process_tracks_who_is_in() -> None:
    leading = False
    metrics = Metrics(is_leader=lambda: leading)
    metrics.set_roster(["A-1", "B-2"])
    recorder = recorder_for(metrics)
    recorder.handle(event(1, "conference.opened", START, late_ms=1200))
    recorder.handle(event(2, "endpoint.invited", START, endpoint="A-1", attempt=1,
                          reason="invited"))
    recorder.handle(event(3, "endpoint.joined", START + timedelta(seconds=5), endpoint="A-1"))
    samples = parse(metrics.render().decode())
    assert value(samples, "vcbridge_scheduler_leader") == 0
    assert value(samples, "vcbridge_invitations_total") == 0
    assert value(samples, "vcbridge_scheduler_transition_lateness_seconds_count",
                 transition="open") == 0
    assert value(samples, "vcbridge_endpoint_in_conference", endpoint="A-1") == 1

    leading = True
    recorder.handle(event(4, "conference.live", START, late_ms=300))
    recorder.handle(event(5, "endpoint.invited", START, endpoint="B-2", attempt=2,
                          reason="no_answer"))
    recorder.handle(event(6, "endpoint.invited", START, endpoint="A-1", attempt=1,
                          reason="dropped"))
    recorder.handle(event(7, "endpoint.invited", START, endpoint="ELSEWHERE", attempt=1,
                          reason="invited"))
    recorder.handle(event(8, "conference.ended", START, late_ms=True))  # not a number
    samples = parse(metrics.render().decode())
    assert value(samples, "vcbridge_scheduler_leader") == 1
    assert value(samples, "vcbridge_invitations_total") == 3
    assert value(samples, "vcbridge_redials_total") == 2
    assert value(samples, "vcbridge_scheduler_transition_lateness_seconds_sum",
                 transition="live") == pytest.approx(0.3)
    assert value(samples, "vcbridge_scheduler_transition_lateness_seconds_count",
                 transition="end") == 0
    # The end closed the conference: nobody in it, no pending invitations kept.
    assert value(samples, "vcbridge_endpoint_in_conference", endpoint="A-1") == 0
    assert recorder.pending == 0
    assert not any(dict(labels).get("endpoint") == "ELSEWHERE" for (_, labels) in samples)


def test_join_duration_is_from_the_first_invitation_and_the_pending_map_is_bounded() -> None:
    metrics = Metrics(is_leader=lambda: True)
    metrics.set_roster(["A-1"])
    recorder = recorder_for(metrics, max_pending=3)
    recorder.handle(event(1, "endpoint.invited", START, endpoint="A-1", attempt=1))
    recorder.handle(event(2, "endpoint.invited", START + timedelta(seconds=50), endpoint="A-1",
                          attempt=2, reason="no_answer"))
    recorder.handle(event(3, "endpoint.joined", START + timedelta(seconds=61), endpoint="A-1"))
    samples = parse(metrics.render().decode())
    assert value(samples, "vcbridge_join_duration_seconds_sum") == pytest.approx(61.0)
    for seq in range(10, 20):
        recorder.handle(event(seq, "endpoint.invited", START, conference=seq, endpoint="A-1",
                              attempt=1))
    assert recorder.pending == 3


def test_roster_changes_add_and_remove_series_and_unknown_codes_are_ignored() -> None:
    metrics = Metrics()
    metrics.set_roster(["A-1", "B-2"])
    metrics.set_endpoint_status("B-2", EndpointStatus(HealthState.DEGRADED, True, START))
    metrics.set_quality("NOT-IN-ROSTER", Quality(packet_loss_ratio=0.5))
    metrics.heartbeat_dropped("made-up reason")
    metrics.set_roster(["B-2", "C-3"])
    samples = parse(metrics.render().decode())
    assert {dict(labels)["endpoint"] for labels in by_name(samples, "vcbridge_endpoint_up")
            } == {"B-2", "C-3"}
    assert value(samples, "vcbridge_endpoint_up", endpoint="B-2") == 1
    assert value(samples, "vcbridge_endpoint_health_state", endpoint="B-2",
                 state="degraded") == 1
    assert value(samples, "vcbridge_endpoint_last_heartbeat_timestamp_seconds",
                 endpoint="B-2") == START.timestamp()
    assert value(samples, "vcbridge_heartbeats_dropped_total", reason="other") == 1
    assert len(by_name(samples, "vcbridge_endpoint_health_state")) == 6


def test_conference_counts_disappear_when_stale() -> None:
    metrics = Metrics()
    metrics.set_conference_counts({"live": 2}, valid_for=60)
    samples = parse(metrics.render().decode())
    assert value(samples, "vcbridge_conferences", state="live") == 2
    assert value(samples, "vcbridge_conferences", state="scheduled") == 0
    metrics.set_conference_counts({"live": 2}, valid_for=-1)
    assert not by_name(parse(metrics.render().decode()), "vcbridge_conferences")


def test_quality_from_cumulative_media_counters() -> None:
    before = MediaCounters(packets_received=900, packets_lost=10, bytes_received=1000,
                           frames_received=100)
    after = MediaCounters(packets_received=1140, packets_lost=22, bytes_received=251000,
                          frames_received=200, round_trip_time_seconds=0.04)
    quality = quality_between(before, after, 4.0)
    assert quality.packet_loss_ratio == pytest.approx(12 / 252)
    assert quality.receive_bytes_per_second == pytest.approx(62500)
    assert quality.frames_per_second == pytest.approx(25)
    assert quality.send_bytes_per_second is None  # not measured: left alone
    assert quality.round_trip_time_seconds == 0.04
    assert quality_between(None, after, 0).packet_loss_ratio is None
    restarted = quality_between(after, before, 4.0)  # counters went back: a new session
    assert restarted.packet_loss_ratio is None and restarted.frames_per_second is None
    idle = quality_between(after, after, 4.0)
    assert idle.packet_loss_ratio is not None and math.isnan(idle.packet_loss_ratio)


def test_media_sampler_sets_and_clears_quality() -> None:
    metrics = Metrics()
    metrics.set_roster(["A-1"])
    now = [100.0]
    source: dict[str, MediaCounters] = {"A-1": MediaCounters(packets_received=0, packets_lost=0)}
    sampler = MediaSampler(metrics, lambda: source, monotonic=lambda: now[0])
    sampler.sample()
    now[0] += 5
    source["A-1"] = MediaCounters(packets_received=95, packets_lost=5)
    sampler.sample()
    loss = value(parse(metrics.render().decode()), "vcbridge_endpoint_packet_loss_ratio",
                 endpoint="A-1", side="bridge")
    assert loss == pytest.approx(0.05)
    source.clear()  # the endpoint left the room
    sampler.sample()
    assert math.isnan(value(parse(metrics.render().decode()),
                            "vcbridge_endpoint_packet_loss_ratio", endpoint="A-1",
                            side="bridge"))


def test_site_quality_is_cleared_when_the_site_stops_reporting_it() -> None:
    metrics = Metrics()
    metrics.set_roster(["A-1", "B-2"])
    now = [100.0]
    site = SiteQuality(metrics, max_age=30, monotonic=lambda: now[0])

    def site_loss(code: str) -> float:
        return value(parse(metrics.render().decode()), "vcbridge_endpoint_packet_loss_ratio",
                     endpoint=code, side="site")

    nan = math.nan
    assert QUALITY_FIELDS[2::3] == ("packet_loss_ratio", "frames_per_second")
    # In QUALITY_FIELDS' order: rtt, jitter, loss, receive, send, fps; NaN: not measured.
    site.report("A-1", (nan, nan, 0.05, nan, nan, 15.0))
    site.report("B-2", (nan, nan, 0.01, nan, nan, nan))
    assert site_loss("A-1") == 0.05 and site_loss("B-2") == 0.01
    samples = parse(metrics.render().decode())
    # A figure the heartbeat left out is not measured: NaN.
    assert math.isnan(value(samples, "vcbridge_endpoint_frames_per_second", endpoint="B-2",
                            side="site"))
    site.report("B-2", None)  # out of the call
    assert math.isnan(site_loss("B-2"))
    now[0] += 29
    site.expire()
    assert site_loss("A-1") == 0.05
    now[0] += 2  # silent here for longer than max_age (gone offline, or to another process)
    site.expire()
    assert math.isnan(site_loss("A-1"))


def test_fast_endpoint_families_render_as_prometheus_client_does() -> None:
    """The per-endpoint fast path prints exactly what a labelled Gauge would."""
    registry = CollectorRegistry()
    reference = Gauge("vcbridge_endpoint_x", 'Doc with "quotes", \\ and\nnewline.',
                      ["endpoint", "state"], registry=registry)
    fast = EndpointGauge("vcbridge_endpoint_x", 'Doc with "quotes", \\ and\nnewline.',
                         extra_label="state")
    values = {("HUYEN-NGA-SON", "ok"): 1.0, ("A\\B\"C", "off\nline"): math.nan,
              ("SO-TTTT", "ok"): 1_700_000_000.25, ("TINH-UY", "ok"): math.inf,
              ("UBND-TINH", "ok"): 1e-7}
    for (code, state), number in values.items():
        reference.labels(code, state).set(number)
        fast.set(code, number, state)
    fast.set("GONE", 1.0, "ok")
    fast.remove("GONE")
    expected = generate_latest(registry).decode()
    assert sorted(fast.render().splitlines()) == sorted(expected.splitlines())
