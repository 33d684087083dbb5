"""Real aiortc sites in a real room: mixed audio, forwarded video, floor control, rejoin."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceTransportPolicy
from aiortc.mediastreams import MediaStreamError

from bridge.agent.generated_media import ColourCardTrack, ToneTrack, dominant_colour, tone_energy
from bridge.agent.site_client import Received, SiteClient
from bridge.ice_policy import ice_servers
from bridge.media_report import site_media
from bridge.signaling import ROOMS
from tests.conftest import Client
from tests.support import loopback_settings, manual_runner, skip_or_fail
from tests.test_booking import book
from vcbridge.core.clock import FixedClock
from vcbridge.core.settings import Settings

H = dict[str, str]
SITES = {  # code: (tone Hz, colour)
    "UBND-TINH": (440.0, (200, 30, 30)),
    "HUYEN-NGA-SON": (660.0, (30, 200, 30)),
    "HUYEN-MUONG-LAT": (880.0, (30, 30, 200)),
}


@pytest.fixture
def settings(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    # `request.param`: the bridge's audio frame in ms (parametrised tests), else the default.
    return loopback_settings(database_url, tmp_path,
                             bridge_audio_frame_ms=getattr(request, "param", 20))


class Site:
    """A test site: its client and what it received, by slot."""

    def __init__(self, code: str) -> None:
        self.code = code
        tone, colour = SITES[code]
        self.tone = ToneTrack(tone)
        self.camera = ColourCardTrack(colour)
        self.audio: list[np.ndarray] = []
        self.colours: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        self.client: SiteClient | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def received(self, item: Received) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._consume(item)))

    async def _consume(self, item: Received) -> None:
        track: MediaStreamTrack = item.track
        try:
            while True:
                frame = await track.recv()
                if item.slot == "mix":
                    self.audio.append(frame.to_ndarray().ravel())  # type: ignore[union-attr]
                    self.audio = self.audio[-100:]
                else:
                    self.colours[item.slot].append(dominant_colour(frame))  # type: ignore[arg-type]
        except MediaStreamError:
            return

    def heard(self, frequency: float, frames: int = 50) -> float:
        if len(self.audio) < frames:
            return 0.0
        samples = np.concatenate(self.audio[-frames:])
        # Decoded audio is stereo interleaved at 48 kHz.
        return tone_energy(samples[::2], frequency)

    def sees(self, slot: str) -> tuple[int, int, int] | None:
        recent = self.colours.get(slot)
        return recent[-1] if recent else None

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        for task in self._tasks:
            task.cancel()


def close_to(colour: tuple[int, int, int] | None, expected: tuple[int, int, int]) -> bool:
    return colour is not None and all(abs(a - b) < 40 for a, b in zip(colour, expected,
                                                                      strict=True))


async def eventually(check: Any, timeout: float = 20.0) -> None:
    # Generous: a condition, not a timing target (the benchmarks measure speed).
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition never met"
        await asyncio.sleep(0.1)


@pytest.fixture
async def room(client: Client, booker: H, admin: H, clock: FixedClock) -> Any:
    """An open conference of the three test sites, and a token per site."""
    conference = await book(client, booker, participants=list(SITES),
                            start="2026-11-27T10:15:00+07:00", end="2026-11-27T12:00:00+07:00")
    app = client.app
    runner = manual_runner(app, clock)
    await runner.sync(conference["id"])  # 10:00 is its open time
    tokens = {}
    for code in SITES:
        response = await client.post(f"/api/v1/endpoints/{code}/tokens", json={}, headers=admin)
        tokens[code] = (await response.json())["token"]
    return conference["id"], tokens


async def join(client: Client, conference_id: int, token: str, site: Site,
               configuration: RTCConfiguration | None = None) -> SiteClient:
    base = str(client.make_url("")).rstrip("/")
    sc = SiteClient(base, conference_id, token, configuration or RTCConfiguration(iceServers=[]),
                    audio=site.tone, video=site.camera, on_received=site.received)
    await sc.join()
    site.client = sc
    return sc


async def test_sites_hear_each_other_see_the_chair_and_follow_the_floor(
    client: Client, room: Any
) -> None:
    conference_id, tokens = room
    sites = {code: Site(code) for code in SITES}
    try:
        for code, site in sites.items():
            await join(client, conference_id, tokens[code], site)
        chair, nga, muong = (sites[c] for c in SITES)
        # Everyone hears the others, not itself (mix-minus), and sees the chair.
        await eventually(lambda: all(len(s.audio) >= 50 for s in sites.values()))
        await asyncio.sleep(1.0)
        for site in sites.values():
            own = site.heard(SITES[site.code][0])
            others = [site.heard(SITES[c][0]) for c in SITES if c != site.code]
            assert min(others) > 50 * max(own, 1.0), (site.code, own, others)
        await eventually(lambda: close_to(nga.sees("chair"), SITES["UBND-TINH"][1]))
        await eventually(lambda: close_to(muong.sees("chair"), SITES["UBND-TINH"][1]))

        # Muong Lat asks for the floor; the chair grants it; Nga Son sees Muong Lat.
        assert muong.client and chair.client and nga.client
        await muong.client.send({"type": "floor.request"})
        await chair.client.wait_state(lambda s: s.get("queue") == ["HUYEN-MUONG-LAT"])
        await chair.client.send({"type": "floor.grant", "endpoint": "HUYEN-MUONG-LAT"})
        await nga.client.wait_state(lambda s: s.get("holder") == "HUYEN-MUONG-LAT")
        await eventually(lambda: close_to(nga.sees("floor"), SITES["HUYEN-MUONG-LAT"][1]), 20)
        # The chair's grid shows every site.
        await eventually(lambda: close_to(chair.sees("grid:HUYEN-NGA-SON"),
                                          SITES["HUYEN-NGA-SON"][1]))
        # The metrics' view of every site: media both ways, round trip and jitter from
        # the sites' receiver reports.
        registry = client.app[ROOMS]
        # (Bytes are awaited too: a speaker now gets the other speaker's own packets,
        # smaller than the bridge's encodes, so 10 kB take a little longer.)
        await eventually(lambda: len(site_media(registry)) == 3 and all(
            m.round_trip_time_seconds is not None and m.jitter_seconds is not None
            and m.bytes_received > 10_000 and m.bytes_sent > 10_000
            for m in site_media(registry).values()), 20)
        for code, media in site_media(registry).items():
            assert media.packets_received and media.frames_received, (code, media)
            assert media.bytes_received > 10_000 and media.bytes_sent > 10_000, (code, media)
            assert media.round_trip_time_seconds is not None
            assert 0 <= media.round_trip_time_seconds < 1 and media.packets_lost == 0, media

        # The chair mutes Nga Son: the others stop hearing it.
        await chair.client.send({"type": "mute", "endpoint": "HUYEN-NGA-SON", "muted": True})
        await muong.client.wait_state(lambda s: "HUYEN-NGA-SON" in s.get("muted", []))
        await eventually(lambda: muong.heard(660.0, 10) * 50 < muong.heard(440.0, 10), 20)
        # A district cannot moderate.
        await nga.client.send({"type": "mute", "endpoint": "UBND-TINH", "muted": True})
        await eventually(lambda: any(e["error"]["code"] == "not_chair"
                                     for e in nga.client.errors) if nga.client else False, 20)
    finally:
        for site in sites.values():
            await site.stop()


@pytest.mark.parametrize("settings", [60], indirect=True)
async def test_with_60_ms_mixes_sites_hear_each_other_and_not_themselves(
    client: Client, room: Any
) -> None:
    """The bridge may send 60 ms Opus frames (a third of the packets) while the sites
    send 20 ms ones: the mix-minus still holds, and the frames are 60 ms long."""
    conference_id, tokens = room
    sites = {code: Site(code) for code in SITES}
    try:
        for code, site in sites.items():
            await join(client, conference_id, tokens[code], site)
        await eventually(lambda: all(len(s.audio) >= 30 for s in sites.values()))
        await asyncio.sleep(1.0)
        for site in sites.values():
            assert len(site.audio[-1]) == 2 * 2880, len(site.audio[-1])  # stereo, 60 ms
            own = site.heard(SITES[site.code][0], 20)
            others = [site.heard(SITES[c][0], 20) for c in SITES if c != site.code]
            assert min(others) > 50 * max(own, 1.0), (site.code, own, others)
    finally:
        for site in sites.values():
            await site.stop()


async def test_a_site_that_drops_comes_back_with_its_seat_and_floor(
    client: Client, room: Any
) -> None:
    conference_id, tokens = room
    sites = {code: Site(code) for code in SITES}
    try:
        for code, site in sites.items():
            await join(client, conference_id, tokens[code], site)
        chair, nga, muong = (sites[c] for c in SITES)
        assert chair.client and nga.client and muong.client
        await nga.client.send({"type": "floor.request"})
        await chair.client.wait_state(lambda s: s.get("queue") == ["HUYEN-NGA-SON"])
        await chair.client.send({"type": "floor.grant", "endpoint": "HUYEN-NGA-SON"})
        await muong.client.wait_state(lambda s: s.get("holder") == "HUYEN-NGA-SON")
        await eventually(lambda: close_to(muong.sees("floor"), SITES["HUYEN-NGA-SON"][1]))

        # Nga Son's network drops: its connections die without a goodbye.
        await nga.client.drop_media()
        await nga.client.close(leave=False)
        await chair.client.wait_state(lambda s: "HUYEN-NGA-SON" not in s.get("present", []))
        assert chair.client.state["holder"] == "HUYEN-NGA-SON"  # the floor is kept for it

        # It reconnects: same seat, still holding the floor, media flows again.
        again = Site("HUYEN-NGA-SON")
        sites["again"] = again
        await join(client, conference_id, tokens["HUYEN-NGA-SON"], again)
        await chair.client.wait_state(lambda s: "HUYEN-NGA-SON" in s.get("present", []))
        assert chair.client.state["holder"] == "HUYEN-NGA-SON"
        muong.colours["floor"].clear()
        await eventually(lambda: close_to(muong.sees("floor"), SITES["HUYEN-NGA-SON"][1]))
        await eventually(lambda: again.heard(440.0, 10) > 0, 20)

        # A second connection for the same endpoint replaces the first, never duplicates it.
        twin = Site("HUYEN-NGA-SON")
        sites["twin"] = twin
        await join(client, conference_id, tokens["HUYEN-NGA-SON"], twin)
        assert again.client is not None
        await asyncio.wait_for(again.client.ended.wait(), 5)
        assert again.client.closed_reason == "replaced"
        assert chair.client.state["present"].count("HUYEN-NGA-SON") == 1
    finally:
        for site in sites.values():
            await site.stop()


@pytest.fixture
def turn_server(tmp_path: Path) -> Any:
    """coturn on loopback with one long-term user, as docs/ice-and-nat.md sets it up;
    yields its URI in the form `VCBRIDGE_ICE_SERVERS` takes."""
    binary = shutil.which("turnserver")
    if binary is None:
        skip_or_fail("coturn (turnserver) is not installed: apt-get install coturn")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "turnserver.log"
    process = subprocess.Popen(
        [str(binary), "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
         f"--listening-port={port}", "--min-port=49160", "--max-port=49999",
         "--lt-cred-mech", "--user=district:relay-secret", "--realm=vcbridge.test",
         "--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli", "--no-multicast-peers",
         f"--log-file={log}", "--simple-log", "--pidfile", str(tmp_path / "turn.pid")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # it binds at once; a dead process shows below
        assert process.poll() is None, log.read_text() if log.exists() else "turnserver died"
        yield f"turn:district:relay-secret@127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_a_district_behind_nat_joins_through_a_turn_relay(
    client: Client, room: Any, turn_server: Any
) -> None:
    """A site that can use relayed candidates only (as behind a strict NAT) hears and
    sees the others through coturn, configured with the `turn:user:password@host:port`
    form of the ice_servers setting."""
    uri = turn_server
    conference_id, tokens = room
    relayed = RTCConfiguration(iceServers=ice_servers([uri]),
                               iceTransportPolicy=RTCIceTransportPolicy.RELAY)
    sites = {code: Site(code) for code in SITES}
    try:
        for code, site in sites.items():
            await join(client, conference_id, tokens[code], site,
                       relayed if code == "HUYEN-MUONG-LAT" else None)
        muong = sites["HUYEN-MUONG-LAT"]
        await eventually(lambda: len(muong.audio) >= 50, 30)
        await eventually(lambda: close_to(muong.sees("chair"), SITES["UBND-TINH"][1]), 30)
        assert muong.heard(440.0) > 50 * max(muong.heard(880.0), 1.0)
        # The chair sees the relayed site in its grid: media went both ways through TURN.
        chair = sites["UBND-TINH"]
        await eventually(lambda: close_to(chair.sees("grid:HUYEN-MUONG-LAT"),
                                          SITES["HUYEN-MUONG-LAT"][1]), 30)
        assert muong.client is not None
        for pc in muong.client.peer_connections:
            for transceiver in pc.getTransceivers():
                pair = transceiver.receiver.transport.transport._connection._nominated[1]
                assert pair.local_candidate.type == "relay", pair
    finally:
        for site in sites.values():
            await site.stop()
