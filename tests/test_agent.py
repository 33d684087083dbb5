"""The unattended endpoint agent: a real agent process joins the conference a real
service's scheduler opens, and leaves at its end; a bad token is retried, not fatal."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import MediaStreamTrack
from av import AudioFrame, VideoFrame

from bridge.agent.endpoint_agent import EndpointAgent
from bridge.agent.media_sources import MediaSource, Restamped
from bridge.agent.settings import AgentConfigError, AgentSettings
from bridge.signaling import ROOMS
from harness.service_process import Service, service_env
from tests.conftest import Client
from tests.support import loopback_agent, loopback_settings, manual_runner
from tests.test_booking import book
from vcbridge.cli import agent_settings, build_parser
from vcbridge.core.clock import FixedClock
from vcbridge.core.settings import Settings, load_settings

SITE = "HUYEN-NGA-SON"
LOOPBACK = "127.0.0.1"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The in-process app's settings: its bridge on loopback only."""
    return loopback_settings(database_url, tmp_path)


def eventually(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
               ) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


class AgentProcess:
    """`python -m vcbridge.cli agent ...` with its log in a file."""

    def __init__(self, tmp_path: Path, server: str, token: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VCBRIDGE_")}
        # The token travels in the environment, not on the command line.
        env.update(VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK, VCBRIDGE_AGENT_TOKEN=token)
        self.log = tmp_path / "agent.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vcbridge.cli", "agent", "--server", server,
                 "--endpoint", SITE, "--media", "testsrc", "--stats-interval", "1"],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log.read_text()

    def logged(self, pattern: str) -> re.Match[str] | None:
        if self.process.poll() is not None:
            raise AssertionError(f"the agent exited ({self.process.returncode}):\n{self.text()}")
        return re.search(pattern, self.text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    started = Service(tmp_path / "service", service_env(VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK))
    try:
        started.wait_healthy()
        started.login()
        yield started
    finally:
        started.stop()


def roll_state(service: Service, conference_id: int) -> str:
    status, body = service.request("GET", f"/api/v1/conferences/{conference_id}/rollcall")
    assert status == 200, body
    return str(next(e["state"] for e in body["endpoints"] if e["code"] == SITE))


def test_agent_process_joins_the_conference_the_scheduler_opens_and_leaves_at_its_end(
    tmp_path: Path, service: Service
) -> None:
    status, issued = service.request("POST", f"/api/v1/endpoints/{SITE}/tokens",
                                     {"label": "agent test"})
    assert status == 201, issued
    agent = AgentProcess(tmp_path, service.base, issued["token"])
    try:
        eventually(lambda: agent.logged(r"connected to the event stream"), 15,
                   "the agent to follow the event stream")
        start = datetime.now(UTC) + timedelta(seconds=3)
        status, conference = service.request("POST", "/api/v1/conferences", {
            "title": "Giao ban trực tuyến",
            "chair": "UBND-TINH",
            "participants": ["UBND-TINH", SITE],
            "start": start.isoformat(),
            "end": (start + timedelta(seconds=8)).isoformat(),
            "setup_minutes": 0,
        })
        assert status == 201, conference
        cid = conference["id"]

        # Nobody tells the agent anything but the event stream: it joins on its own.
        eventually(lambda: roll_state(service, cid) == "joined", 15,
                   f"the roll call to show {SITE} joined")
        assert agent.logged(rf"conference {cid}: joining, (invited|the conference started)")
        # The roll call says joined when the bridge's side of the media is up; the agent
        # writes its own line when its side sees it, a moment later (another process).
        eventually(lambda: agent.logged(rf"conference {cid}: joined, media connected"), 5,
                   "the agent to log its media connected")
        # It reads what the bridge sends (the mix), counted in its summary line.
        eventually(lambda: agent.logged(r"received frames: mix [1-9]"), 5,
                   "the agent to count received audio")

        status, body = service.request("GET", f"/api/v1/conferences/{cid}")
        assert status == 200 and body["status"] == "live", body
        # Whichever comes first: the end's event, or the room closing under the site
        # (then the controller says the conference is no longer running).
        left = eventually(
            lambda: agent.logged(rf"conference {cid}: left \(the conference (ended|is over)\)"),
            15, "the agent to leave at the end")
        assert roll_state(service, cid) == "left"
        status, body = service.request("GET", f"/api/v1/conferences/{cid}")
        assert body["status"] == "ended", body
        # Still running, waiting for the next conference, in no conference now.
        eventually(lambda: agent.logged(r"conferences: none; received")
                   and "conferences: none" in agent.text()[left.end():], 5,
                   "a summary with no conference after the end")
        assert agent.process.poll() is None
        text = agent.text()
        assert text.count(f"conference {cid}: signaling connected") == 1, text  # joined once
        assert "Traceback" not in text, text
        assert issued["token"] not in text, "the token must not be logged"
    finally:
        agent.stop()
    # SIGTERM stops it cleanly.
    assert agent.process.returncode == 0, agent.text()


async def test_agent_with_a_bad_token_logs_401_and_keeps_retrying(
    client: Client, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    base = str(client.make_url("")).rstrip("/")
    agent = EndpointAgent(loopback_agent(base, SITE, "vca_not-a-real-token"))
    caplog.set_level(logging.INFO, logger="bridge.agent")
    task = asyncio.create_task(agent.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while agent.stats()["stream_failures"] < 3:
        assert not task.done(), task
        assert loop.time() < deadline, agent.stats()
        await asyncio.sleep(0.05)
    assert not task.done(), "the agent keeps running"
    refused = [r for r in caplog.records if "HTTP 401" in r.getMessage()]
    assert len(refused) >= 3
    # Backoff: the retries are spaced out, each wait longer than the previous range.
    waits = [float(m.group(1)) for r in refused
             if (m := re.search(r"retrying in ([\d.]+) s", r.getMessage()))]
    assert 0.2 <= waits[0] <= 0.5 and 0.5 <= waits[1] <= 1.0, waits
    stats = agent.stats()
    assert stats["stream_connected"] is False and stats["joins"] == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_agent_refuses_a_token_of_another_endpoint(
    client: Client, admin: dict[str, str], settings: Settings
) -> None:
    response = await client.post("/api/v1/endpoints/UBND-TINH/tokens", json={}, headers=admin)
    assert response.status == 201
    token = (await response.json())["token"]
    agent = EndpointAgent(loopback_agent(str(client.make_url("")), SITE, token))
    with pytest.raises(AgentConfigError, match="belongs to UBND-TINH"):
        await asyncio.wait_for(agent.run(), 10)


async def until(check: Callable[[], Any], what: str, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_agent_rejoins_when_the_bridge_drops_it_and_leaves_at_the_end(
    client: Client, admin: dict[str, str], booker: dict[str, str], settings: Settings,
    clock: FixedClock,
) -> None:
    conference = await book(client, booker, participants=["UBND-TINH", SITE],
                            start="2026-11-27T10:15:00+07:00", end="2026-11-27T11:00:00+07:00")
    cid = conference["id"]
    app = client.app
    runner = manual_runner(app, clock)
    await runner.sync(cid)  # 10:00: the room opens
    response = await client.post(f"/api/v1/endpoints/{SITE}/tokens", json={}, headers=admin)
    agent = EndpointAgent(loopback_agent(str(client.make_url("")), SITE,
                                         (await response.json())["token"]))
    task = asyncio.create_task(agent.run())
    try:
        # Started while the conference is open: it finds it and joins.
        await until(lambda: agent.stats()["joined"] == [cid], "the first join")
        room = app[ROOMS].rooms[cid]
        # The bridge loses the site (as when its peer connection fails).
        await room.disconnect(room.connections[SITE], left=False)
        await until(lambda: agent.stats()["joins"] == 2 and agent.stats()["joined"] == [cid],
                    "the rejoin")
        stats = agent.stats()
        assert stats["rejoins"] == 1 and stats["signaling_drops"] == 1, stats
        assert list(room.connections) == [SITE]
        await until(lambda: agent.stats()["received_frames"].get("mix", 0) > 0, "audio")

        clock.set(datetime(2026, 11, 27, 4, 1, tzinfo=UTC))  # 11:01: over
        await runner.sync(cid)
        await until(lambda: agent.stats()["attending"] == [], "the agent to leave")
        assert agent.stats()["left"] == 1 and agent.stats()["joins"] == 2
        assert cid not in app[ROOMS].rooms
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class _Looping(MediaStreamTrack):
    """A source whose timestamps start again, like a media file played in a loop."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.count = 0

    async def recv(self) -> Any:
        turn = self.count % 3
        self.count += 1
        if self.kind == "audio":
            frame = AudioFrame.from_ndarray(np.zeros((1, 960), np.int16), format="s16",
                                            layout="mono")
            frame.sample_rate = 48000
            frame.pts = turn * 960
            return frame
        video = VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        video.pts = turn * 6000
        return video


async def test_a_looping_source_gets_timestamps_that_only_go_forward() -> None:
    for kind in ("audio", "video"):
        track = Restamped(_Looping(kind))
        stamps = [(await track.recv()).pts for _ in range(7)]
        assert all(b is not None and a is not None and b > a
                   for a, b in itertools.pairwise(stamps)), (kind, stamps)
        if kind == "audio":
            assert stamps == [i * 960 for i in range(7)]


def test_vcbridge_agent_takes_its_settings_from_the_flags_and_the_services_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VCBRIDGE_ICE_SERVERS", "stun:stun.example.org:3478")
    monkeypatch.setenv("VCBRIDGE_ICE_HOST_ADDRESSES", "127.0.0.1, 10.20.0.7")
    args = build_parser().parse_args([
        "agent", "--server", "http://10.20.0.5:8080/", "--endpoint", SITE,
        "--media", "testsrc", "--audio-device", "hw:1", "--stats-interval", "7"])
    settings = agent_settings(args, "vca_secret-token", load_settings())
    assert settings == AgentSettings(
        server="http://10.20.0.5:8080", endpoint=SITE, token="vca_secret-token",
        media="testsrc", audio_device="hw:1", ice_servers=("stun:stun.example.org:3478",),
        ice_host_addresses=("127.0.0.1", "10.20.0.7"), summary_seconds=7.0)
    assert settings.heartbeat_seconds == 5.0 and settings.stream_retry == (0.5, 30.0)
    assert "vca_secret-token" not in repr(settings), "the token must not reach a log line"


def test_a_media_source_that_cannot_open_lends_no_tracks_and_says_why(tmp_path: Path) -> None:
    errors: list[Exception] = []
    missing = MediaSource(str(tmp_path / "missing.mp4"), SITE)
    with missing.borrowed(errors.append) as tracks:
        assert tracks == (None, None)  # the agent then joins receive-only
    assert len(errors) == 1, errors
    generated = MediaSource("testsrc", SITE)
    with generated.borrowed(errors.append) as (audio, video):
        assert audio is not None and video is not None
        assert audio.readyState == "live"
    assert audio.readyState == "ended" and len(errors) == 1  # given back: stopped
