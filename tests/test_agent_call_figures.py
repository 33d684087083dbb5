"""The site's view of call quality: the endpoint agent's heartbeats carry the call's
figures from its own peer connections, the machine's CPU utilisation over the interval,
and its devices probed for real.

A real `vcbridge serve` process (its scheduler and its bridge on loopback) and real
aiortc peers: the chair is an agent process with a generated 15 fps picture, the
district is an agent in the test process, whose heartbeats are recorded as sent. The
bridge and the site run in different processes, as they do in the province: in one
process each one's event loop would add its delays to the other's round trip."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.agent.device_probe import SoundWatch, probe_microphone
from bridge.agent.endpoint_agent import EndpointAgent
from bridge.agent.generated_media import ToneTrack
from bridge.agent.heartbeats import HeartbeatReporter
from bridge.ice_policy import restrict_host_addresses
from harness.service_process import Service, service_env
from monitoring.health.wire import Heartbeat
from tests.support import loopback_agent, skip_or_fail

SITE = "HUYEN-NGA-SON"
NO_SUCH_PCM = "vcbridge-test-no-such-pcm"  # an ALSA capture device that never opens
CHAIR = "UBND-TINH"
LOOPBACK = "127.0.0.1"
HEARTBEAT_SECONDS = 5.0  # the service's default interval
# Loopback's round trip is the two processes' event-loop delays: a few ms at most on an
# idle machine. A machine shared with other work may set more.
LOOPBACK_RTT_MS = float(os.environ.get("VCBRIDGE_TEST_LOOPBACK_RTT_MS", "5"))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    restrict_host_addresses([LOOPBACK])  # this process's agent too
    started = Service(tmp_path_factory.mktemp("call-figures"),
                      service_env(VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK))
    try:
        started.wait_healthy(timeout=60)
        started.login()
        yield started
    finally:
        started.stop()


def endpoint_token(service: Service, code: str) -> str:
    status, body = service.request("POST", f"/api/v1/endpoints/{code}/tokens", {})
    assert status == 201, body
    return str(body["token"])


def conference_status(service: Service, conference_id: int) -> str:
    status, body = service.request("GET", f"/api/v1/conferences/{conference_id}")
    assert status == 200, body
    return str(body["status"])


def health(service: Service, code: str) -> dict[str, Any]:
    status, body = service.request("GET", f"/api/v1/health/{code}?hours=1")
    assert status == 200, body
    return dict(body)


class Recorded:
    """The heartbeats an agent sent, as it sent them (and checked against the contract:
    the server's own model of the body), with the time each was made."""

    def __init__(self, agent: EndpointAgent) -> None:
        self.bodies: list[tuple[float, dict[str, Any]]] = []
        reporter: HeartbeatReporter = agent.heartbeats
        build = reporter.body

        async def body(rtt_ms: float | None, interval: float) -> dict[str, Any]:
            started = time.monotonic()
            made = await build(rtt_ms, interval)
            Heartbeat.model_validate_json(json.dumps(made))
            self.bodies.append((started, made))
            return made

        reporter.body = body  # type: ignore[method-assign]

    async def next(self, timeout: float = 3 * HEARTBEAT_SECONDS) -> dict[str, Any]:
        """The next heartbeat made from now on."""
        count = len(self.bodies)
        await until(lambda: len(self.bodies) > count, "the next heartbeat", timeout)
        return self.bodies[count][1]


async def until(check: Callable[[], Any], what: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.05)
    return result


@contextlib.asynccontextmanager
async def running(agent: EndpointAgent) -> AsyncIterator[Recorded]:
    sent = Recorded(agent)
    task = asyncio.create_task(agent.run())
    try:
        yield sent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.contextmanager
def agent_process(service: Service, code: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`vcbridge agent --media testsrc` for `code` (a 15 fps colour card and a tone)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VCBRIDGE_")}
    env.update(VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK,
               VCBRIDGE_AGENT_TOKEN=endpoint_token(service, code))
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "vcbridge.cli", "agent", "--server", service.base,
             "--endpoint", code, "--media", "testsrc"],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def test_a_clean_link_reports_15_fps_no_loss_and_a_loopback_round_trip(
    service: Service, tmp_path: Path
) -> None:
    """The chair sends a 15 fps picture; the site's heartbeats say 15 ± 1 frames/s for
    the slot showing it, no loss, a round trip under 5 ms, and count no audio frame as
    video; the endpoint's health shows the same."""
    agent = EndpointAgent(loopback_agent(service.base, SITE, endpoint_token(service, SITE),
                                         heartbeat_seconds=HEARTBEAT_SECONDS))
    with agent_process(service, CHAIR, tmp_path / "chair.log"):
        start = datetime.now(UTC) + timedelta(seconds=2)
        status, conference = service.request("POST", "/api/v1/conferences", {
            "title": "Giao ban trực tuyến", "chair": CHAIR, "participants": [CHAIR, SITE],
            "start": start.isoformat(), "end": (start + timedelta(minutes=5)).isoformat(),
            "setup_minutes": 0})
        assert status == 201, conference
        cid = conference["id"]
        # The site starts once the meeting runs: it joins at once, with no test call
        # (whose result would send a heartbeat early) and regular intervals.
        await until(lambda: conference_status(service, cid) == "live", "the start", 30)
        async with running(agent) as sent:
            await until(lambda: agent.stats()["joined"] == [cid], "the agent to join", 30)
            await until(lambda: agent.stats()["received_frames"].get("chair", 0) > 0,
                        "the chair's picture", 20)
            await sent.next()  # the first reading of the new connections: no rates yet
            calls = [await sent.next() for _ in range(3)]
            shown = health(service, SITE)["call"]
            status, body = service.request("DELETE", f"/api/v1/conferences/{cid}")
            assert status == 200, body  # the room closes: the next tests' site is in none

    for call in (body["call"] for body in calls):
        assert call["conference"] == cid and call["source"] == "agent", call
        video_in, audio_in = call["video"]["in"], call["audio"]["in"]
        # Only the slot showing a picture counts (nobody has the floor: the bridge sends
        # nothing on it), and the summary is its rate: the audio frames that arrived
        # meanwhile (the mix, up to 50 a second) never count.
        assert set(video_in["fps_by_slot"]) == {"chair"}, call
        assert 14 <= video_in["fps_by_slot"]["chair"] <= 16, call
        assert call["fps"] == video_in["fps_by_slot"]["chair"], call
        assert audio_in["packets_received"] > 0, call
        assert call["packet_loss_ratio"] == 0, call
        assert audio_in["packets_lost"] == 0 and video_in["packets_lost"] == 0, call
        assert call["bitrate_in_bps"] == audio_in["bitrate_bps"] + video_in["bitrate_bps"]
        assert video_in["bitrate_bps"] > 0 and call["video"]["out"]["bitrate_bps"] > 0, call
        assert call["video"]["out"]["packets_sent"] > 0, call
        # The bridge's receiver reports on both of the site's streams give the round
        # trip and the loss the bridge saw (none on a clean line); the call's round
        # trip is the worse of the two.
        audio_out, video_out = call["audio"]["out"], call["video"]["out"]
        assert audio_out["rtt_ms"] is not None and video_out["rtt_ms"] is not None, call
        assert call["rtt_ms"] == max(audio_out["rtt_ms"], video_out["rtt_ms"]), call
        assert audio_out["loss_ratio"] == 0 and audio_out["jitter_ms"] is not None, call
        assert call["jitter_ms"] is not None and video_in["jitter_ms"] is not None, call
    # Loopback: the round trip is the two event loops' delays (aiortc smooths it).
    assert statistics.median(body["call"]["rtt_ms"] for body in calls) < LOOPBACK_RTT_MS, calls
    # The controller took them: the endpoint's health shows the site's figures.
    assert shown["fps"] is not None and 14 <= shown["fps"] <= 16, shown
    assert shown["packet_loss_ratio"] == 0 and shown["rtt_ms"] is not None, shown


async def test_a_microphone_that_delivers_only_silence_or_does_not_open_is_missing() -> None:
    """The frames a microphone delivers are looked at: a tone sounds, a muted input's
    exact zeros do not; a capture device that does not open is not there."""
    tone, heard, muted = ToneTrack(440.0), SoundWatch(), SoundWatch()
    for _ in range(3):
        heard.saw(await tone.recv())
    tone.muted = True
    for _ in range(3):
        muted.saw(await tone.recv())
    assert heard.take() == (3, 3) and muted.take() == (3, 0)
    assert heard.take() == (0, 0)  # counted afresh for each heartbeat
    assert await asyncio.to_thread(probe_microphone, NO_SUCH_PCM) is False


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, read from /proc/stat by the test."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (then guest time, inside user already)
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return total - idle - iowait, total


async def test_the_cpu_figure_is_the_machines_utilisation_over_the_interval() -> None:
    """A heartbeat's CPU figure is the busy share of the machine's CPU time since the
    previous heartbeat, as /proc/stat says, not the load average."""
    if not sys.platform.startswith("linux"):
        skip_or_fail("the test reads Linux's /proc/stat")
    agent = EndpointAgent(loopback_agent("http://127.0.0.1:9", SITE, "not-used"))
    reporter = agent.heartbeats
    await reporter.body(None, 1.0)  # the interval starts at this heartbeat
    before = cpu_times()
    # Load one core for part of the interval, so the figure moves.
    burner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time\nend = time.time() + 1.2\nwhile time.time() < end: pass")
    await burner.wait()
    await asyncio.sleep(0.8)
    after = cpu_times()
    figure = (await reporter.body(None, 2.0))["cpu_percent"]
    busy, total = after[0] - before[0], after[1] - before[1]
    expected = 100 * busy / total
    load_average = min(os.getloadavg()[0] / (os.cpu_count() or 1), 1.0) * 100
    # The test's reading and the agent's cover the same interval (a few jiffies apart).
    assert figure is not None and abs(figure - expected) < 3, (figure, expected, load_average)
    assert 0 < figure <= 100


async def test_a_camera_that_disappears_is_reported_at_the_next_heartbeat(
    service: Service, tmp_path: Path
) -> None:
    """The camera is a device node (a character device made for the test, as udev
    makes /dev/video0 for a USB camera): present while it can be opened; removed (the
    camera unplugged), the next heartbeat says so and the endpoint's health shows it."""
    camera = tmp_path / "video0"
    try:
        os.mknod(camera, 0o600 | 0o020000, os.makedev(1, 3))  # S_IFCHR; /dev/null's numbers
    except PermissionError:
        skip_or_fail("making a device node needs CAP_MKNOD (root)")
    agent = EndpointAgent(loopback_agent(service.base, SITE, endpoint_token(service, SITE),
                                         media=str(camera), audio_device=NO_SUCH_PCM,
                                         heartbeat_seconds=1.5))
    assert agent.media.kind == "device"
    async with running(agent) as sent:
        first = await sent.next()
        assert first["devices"]["camera"] is True, first
        # The microphone is probed too: an ALSA device that does not open is missing.
        assert first["devices"]["microphone"] is False, first
        await until(lambda: health(service, SITE)["devices"]["camera"] is True,
                    "the health to show the camera", 10)
        camera.unlink()  # unplugged
        unplugged = time.monotonic()
        await until(lambda: any(at > unplugged for at, _ in sent.bodies), "a heartbeat", 5)
        after = next(body for at, body in sent.bodies if at > unplugged)
        assert after["devices"]["camera"] is False, after
        shown = await until(lambda: (h := health(service, SITE))["devices"]["camera"] is False
                            and h, "the health to show the camera missing", 5)
        assert "camera_missing" in [r["code"] for r in shown["reasons"]], shown
