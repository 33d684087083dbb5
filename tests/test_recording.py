"""Recording: the chair records the common mix and the main video into a WebM file;
the API lists and serves the files to staff and the chair endpoint only."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from yarl import URL

from bridge.agent.generated_media import dominant_colour, tone_energy
from bridge.openapi import RECORDING_NAME
from bridge.recorder import (
    NAME_PATTERN,
    opus_head,
    parse_recording_name,
    recording_name,
    vp8_dimensions,
)
from bridge.signaling import ROOMS
from tests.conftest import Client
from tests.test_bridge_media import SITES, Site, close_to, eventually, join
from tests.test_bridge_media import room as room
from tests.test_bridge_media import settings as settings
from vcbridge.core.settings import Settings

H = dict[str, str]
CHAIR, NGA, MUONG = SITES
GREEN, BLUE = SITES[NGA][1], SITES[MUONG][1]
SLOW = 20.0  # seconds: a bound for steps that take well under a second on an idle machine


def recordings_url(conference_id: int, name: str | None = None) -> str:
    url = f"/api/v1/conferences/{conference_id}/recordings"
    return url if name is None else f"{url}/{name}"


async def listing(client: Client, conference_id: int, headers: H) -> list[dict[str, Any]]:
    response = await client.get(recordings_url(conference_id), headers=headers)
    body = await response.json()
    assert response.status == 200, body
    assert body["conference"] == conference_id
    recordings: list[dict[str, Any]] = body["recordings"]
    return recordings


async def download(client: Client, conference_id: int, name: str, headers: H) -> bytes:
    response = await client.get(recordings_url(conference_id, name), headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "video/webm"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    return await response.read()


class Decoded:
    """What a recording holds, decoded: colours and audio with their times."""

    def __init__(self, path: Path) -> None:
        with av.open(str(path)) as container:
            self.duration = (None if container.duration is None
                             else container.duration / 1_000_000)
            audio, video = container.streams.audio[0], container.streams.video[0]
            self.audio_codec, self.video_codec = audio.codec_context.name, video.codec_context.name
            self.channels = audio.codec_context.channels
            self.size = (video.codec_context.width, video.codec_context.height)
            self.colours: list[tuple[float, tuple[int, int, int]]] = []
            self.audio: list[tuple[float, np.ndarray]] = []
            for packet in container.demux():
                for frame in packet.decode():
                    assert frame.pts is not None and frame.time_base is not None
                    at = float(frame.pts * frame.time_base)
                    if isinstance(frame, av.VideoFrame):
                        self.colours.append((at, dominant_colour(frame)))
                    elif isinstance(frame, av.AudioFrame):
                        self.audio.append((at, frame.to_ndarray()[0]))

    def energy(self, frequency: float, start: float, end: float) -> float:
        """The median over the decoded frames between `start` and `end` s (frame by
        frame: an overloaded engine leaves gaps, and a tone across a gap is no tone)."""
        energies = [tone_energy(pcm * 32767, frequency)
                    for at, pcm in self.audio if start <= at < end]
        assert energies, f"no audio between {start} and {end} s"
        return float(np.median(energies))


async def test_the_chair_records_the_main_video_and_the_mix(
    client: Client, room: Any, admin: H, tmp_path: Path
) -> None:
    conference_id, tokens = room
    sites = {code: Site(code) for code in SITES}
    try:
        for code, site in sites.items():
            await join(client, conference_id, tokens[code], site)
        chair, nga, muong = (sites[c].client for c in SITES)
        assert chair and nga and muong
        # Generous timeouts: on a loaded machine every step takes longer.
        await eventually(lambda: close_to(sites[NGA].sees("chair"), SITES[CHAIR][1]), SLOW)
        # Muong Lat holds the floor; Nga Son is muted (not in the common mix).
        await muong.send({"type": "floor.request"})
        await chair.wait_state(lambda s: s.get("queue") == [MUONG], SLOW)
        await chair.send({"type": "floor.grant", "endpoint": MUONG})
        await chair.send({"type": "mute", "endpoint": NGA, "muted": True})
        await nga.wait_state(lambda s: s.get("holder") == MUONG and NGA in s["muted"], SLOW)
        assert nga.state["recording"] is False

        # A district may not record.
        await nga.send({"type": "record", "on": True})
        await eventually(lambda: any(e["error"]["code"] == "not_chair" for e in nga.errors),
                         SLOW)
        assert nga.state["recording"] is False

        await chair.send({"type": "record", "on": True})
        await nga.wait_state(lambda s: s.get("recording") is True, SLOW)
        recorder = client.app[ROOMS].rooms[conference_id].recorder
        assert recorder is not None

        def recording(code: str) -> bool:
            assert recorder is not None
            slot = recorder.slot
            return (slot.source is not None and slot.source.code == code
                    and slot.first_frame_after_switch is not None)

        await eventually(lambda: recording(MUONG), SLOW)
        await asyncio.sleep(2.0)
        # The floor moves to Nga Son (unmuting it): the recording follows the main video.
        await chair.send({"type": "floor.grant", "endpoint": NGA})
        await eventually(lambda: recording(NGA), SLOW)
        await asyncio.sleep(2.0)
        await chair.send({"type": "record", "on": False})
        await nga.wait_state(lambda s: s.get("recording") is False, SLOW)
    finally:
        for site in sites.values():
            await site.stop()

    [listed] = await listing(client, conference_id, admin)
    assert parse_recording_name(listed["id"]) is not None
    assert listed["recording"] is False
    data = await download(client, conference_id, listed["id"], admin)
    assert listed["size"] == len(data)
    path = tmp_path / "downloaded.webm"
    path.write_bytes(data)
    got = Decoded(path)
    assert (got.audio_codec, got.video_codec, got.channels, got.size) == (
        "opus", "vp8", 1, (320, 180))
    # Loose bounds on times: on a loaded machine every step of the test takes longer.
    assert got.duration is not None and 4.0 < got.duration < 20.0, got.duration
    assert listed["duration"] == pytest.approx(got.duration, abs=0.01)

    # The main video: Muong Lat's picture, then Nga Son's from a keyframe on.
    colours = [colour for _, colour in got.colours]
    assert len(colours) > 20, len(colours)
    switch = next(i for i, c in enumerate(colours) if close_to(c, GREEN))
    assert switch > 5 and all(close_to(c, BLUE) for c in colours[:switch]), colours
    assert all(close_to(c, GREEN) for c in colours[switch:]), colours
    switched_at = got.colours[switch][0]
    # The grant came 2 s after the recording first showed Muong Lat.
    assert 1.9 < switched_at < got.duration - 1.5, switched_at

    # The common mix: the chair and the floor holder; Nga Son only once it has the floor
    # (at the grant: its video follows at its next keyframe, later on a loaded machine).
    before = {f: got.energy(f, 0.3, 1.8) for f in (440.0, 660.0, 880.0)}
    after = {f: got.energy(f, switched_at + 0.5, got.duration) for f in (660.0, 880.0)}
    assert min(before[440.0], before[880.0]) > 20 * before[660.0], before
    assert after[660.0] > 20 * before[660.0], (before, after)

    response = await client.get("/api/v1/audit?action=floor.record", headers=admin)
    events = (await response.json())["events"]
    assert sorted(e["after"]["on"] for e in events) == [False, True]
    assert {e["after"]["recording"] for e in events} == {listed["id"]}


async def until(ws: aiohttp.ClientWebSocketResponse, predicate: Any) -> dict[str, Any]:
    """The next message that satisfies `predicate`."""
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=SLOW)
        if predicate(message):
            return message


async def signal(client: Client, conference_id: int, token: str
                 ) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(f"/api/v1/conferences/{conference_id}/signal",
                                 headers={"Authorization": f"Bearer {token}"})
    assert (await ws.receive_json(timeout=SLOW))["type"] == "joined"
    return ws


async def test_closing_the_room_finishes_the_recording(
    client: Client, room: Any, admin: H, tmp_path: Path
) -> None:
    """No media needed: the engine mixes silence, and no site sends video."""
    conference_id, tokens = room
    chair = await signal(client, conference_id, tokens[CHAIR])
    nga = await signal(client, conference_id, tokens[NGA])
    await nga.send_json({"type": "record", "on": True})
    refused = await until(nga, lambda m: m["type"] == "error")
    assert refused["error"]["code"] == "not_chair"
    await chair.send_json({"type": "record", "on": "yes"})
    refused = await until(chair, lambda m: m["type"] == "error")
    assert refused["error"]["code"] == "bad_message"
    # A directory the bridge cannot write to: the chair is told, nothing starts.
    the_room = client.app[ROOMS].rooms[conference_id]
    directory, the_room.recordings_dir = the_room.recordings_dir, tmp_path / "a-file"
    (tmp_path / "a-file").write_text("not a directory")
    await chair.send_json({"type": "record", "on": True})
    refused = await until(chair, lambda m: m["type"] == "error")
    assert refused["error"]["code"] == "recording_failed"
    assert the_room.recorder is None and not the_room.snapshot()["recording"]
    the_room.recordings_dir = directory

    await chair.send_json({"type": "record", "on": True})
    await until(nga, lambda m: m["type"] == "state" and m["recording"])

    [listed] = await listing(client, conference_id, admin)
    assert (listed["recording"], listed["duration"]) == (True, None)
    response = await client.get(recordings_url(conference_id, listed["id"]), headers=admin)
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "conflict"

    await asyncio.sleep(1.5)
    await client.app[ROOMS].close_room(conference_id, "ended")
    assert (await until(nga, lambda m: m["type"] == "closed"))["reason"] == "ended"
    [listed] = await listing(client, conference_id, admin)
    assert listed["recording"] is False
    assert 1.0 < listed["duration"] < 3.0, listed
    path = tmp_path / "closed.webm"
    path.write_bytes(await download(client, conference_id, listed["id"], admin))
    got = Decoded(path)
    assert (got.audio_codec, got.video_codec) == ("opus", "vp8")
    assert got.colours == []  # nobody sent video
    assert sum(len(pcm) for _, pcm in got.audio) >= 48000  # silence, but a second of it

    response = await client.get("/api/v1/audit?action=floor.record", headers=admin)
    stopped = [e["after"] for e in (await response.json())["events"] if not e["after"]["on"]]
    assert stopped == [{"on": False, "recording": listed["id"], "cause": "ended"}]
    await chair.close()
    await nga.close()


async def test_only_staff_and_the_chair_endpoint_read_recordings(
    client: Client, room: Any, admin: H, booker: H, make_user: Any, settings: Settings
) -> None:
    conference_id, tokens = room
    directory = settings.effective_recordings_dir
    directory.mkdir(parents=True)
    name = recording_name(conference_id, datetime(2026, 11, 27, 3, 16, tzinfo=UTC))
    content = b"\x1a\x45\xdf\xa3 a recording"
    (directory / name).write_bytes(content)
    other = recording_name(conference_id + 1, datetime(2026, 11, 27, 3, 16, tzinfo=UTC))
    (directory / other).write_bytes(b"another conference's")
    (directory / "notes.txt").write_text("not a recording")
    linked = recording_name(conference_id, datetime(2026, 11, 27, 3, 17, tzinfo=UTC))
    (directory / linked).symlink_to(settings.data_dir / "test.sqlite3")

    it = await make_user("it1", "it")
    chair_operator = await make_user("op-chair", "operator", CHAIR)
    nga_operator = await make_user("op-nga", "operator", NGA)
    outsider = await make_user("op-tinh-uy", "operator", "TINH-UY")
    response = await client.post(f"/api/v1/endpoints/{CHAIR}/tokens", headers=admin,
                                 json={"scope": "calendar"})
    calendar = {"Authorization": f"Bearer {(await response.json())['token']}"}

    def agent(code: str) -> H:
        return {"Authorization": f"Bearer {tokens[code]}"}

    for allowed in (admin, booker, it, chair_operator, agent(CHAIR)):
        rows = await listing(client, conference_id, allowed)
        assert [(r["id"], r["size"], r["duration"], r["recording"]) for r in rows] == [
            (name, len(content), None, False)]
        assert rows[0]["started"] == "2026-11-27T10:16:00+07:00"
        assert await download(client, conference_id, name, allowed) == content
    client.session.cookie_jar.clear()  # logging in set a session cookie: no anonymous then
    for refused, status in ((nga_operator, 403), (agent(NGA), 403), (calendar, 403),
                            (outsider, 404), ({}, 401)):
        for url in (recordings_url(conference_id), recordings_url(conference_id, name)):
            response = await client.get(url, headers=refused)
            assert response.status == status, (url, refused, await response.text())
    for url in (recordings_url(999999), recordings_url(999999, name)):
        assert (await client.get(url, headers=admin)).status == 404

    # Only names in the conference's listing are served: no path is built from the request.
    base = f"/api/v1/conferences/{conference_id}/recordings/"
    for bad in ("..%2F..%2Ftest.sqlite3", "..%2Ftest.sqlite3", "%2E%2E%2Ftest.sqlite3",
                "%2Fetc%2Fpasswd", "%2F" + "%2F".join(str(directory / name).split("/")[1:]),
                "..", "%2E%2E", other, "notes.txt", linked, f"{name}%2F", f"{name}.part"):
        response = await client.get(URL(base + bad, encoded=True), headers=admin)
        assert response.status == 404, (bad, await response.text())
        assert (await response.json())["error"]["code"] == "not_found"
    for raw in (f"{base}/etc/passwd", f"{base}../../test.sqlite3", f"{base}{name}/x"):
        response = await client.get(URL(raw, encoded=True), headers=admin)
        assert response.status == 404, (raw, await response.text())
    # A NUL may be refused before routing (400) or by the listing (404): never served.
    response = await client.get(URL(f"{base}{name}%00", encoded=True), headers=admin)
    assert response.status in (400, 404), await response.text()
    rows = await listing(client, conference_id, admin)
    assert [r["id"] for r in rows] == [name]


_CRASHING_RECORDER = """
import asyncio, math, os, sys, time
from fractions import Fraction
from pathlib import Path
import av, numpy as np
from bridge.opus_codec import OpusEncoder
from bridge.recorder import Recorder
from bridge.video_router import VideoSource

async def main() -> None:
    audio = OpusEncoder()
    video = av.CodecContext.create("libvpx", "w")
    video.width, video.height, video.pix_fmt = 160, 90, "yuv420p"
    video.time_base, video.framerate, video.gop_size = Fraction(1, 90000), 25, 25
    video.open()
    recorder = Recorder.create(Path(sys.argv[1]), 5)
    recorder.start()
    source = VideoSource("A")
    recorder.show(source)
    start = time.monotonic()
    for i in range(125):  # 2.5 s in real time
        t = (np.arange(960) + i * 960) / 48000
        recorder.audio(audio.encode((9000 * np.sin(2 * math.pi * 440 * t)).astype(np.int16)),
                       i * 960)
        if i % 2 == 0:
            image = np.full((90, 160, 3), (30, 30, 200), np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i * 1800, Fraction(1, 90000)
            for packet in video.encode(frame):
                source.on_frame(bytes(packet), i * 1800)
        await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
    os._exit(1)  # a crash: no stop(), no trailer

asyncio.run(main())
"""


def test_a_crash_leaves_a_playable_prefix(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", _CRASHING_RECORDER, str(tmp_path)],
                            capture_output=True, timeout=60, check=False,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 1, result.stderr.decode()
    [path] = tmp_path.iterdir()
    got = Decoded(path)
    assert got.duration is None  # no trailer: the header's duration was never filled in
    assert (got.audio_codec, got.video_codec, got.size) == ("opus", "vp8", (160, 90))
    seconds = sum(len(pcm) for _, pcm in got.audio) / 48000
    assert 1.0 <= seconds <= 2.5, seconds  # the clusters closed before the crash
    assert got.energy(440.0, 0.0, 1.0) > 20 * got.energy(660.0, 0.0, 1.0)
    assert len(got.colours) >= 20 and all(close_to(c, (30, 30, 200)) for _, c in got.colours)


def test_helpers() -> None:
    documented = re.compile(RECORDING_NAME["pattern"])
    for name in ("conference-12-20261127T031509Z.webm", "conference-1-20261127T031509Z.webm.x",
                 "conference-x-20261127T031509Z.webm", "/conference-1-20261127T031509Z.webm"):
        assert bool(documented.search(name)) == bool(NAME_PATTERN.fullmatch(name)), name
    started = datetime(2026, 11, 27, 3, 15, 9, tzinfo=UTC)
    assert recording_name(12, started) == "conference-12-20261127T031509Z.webm"
    assert parse_recording_name("conference-12-20261127T031509Z.webm") == (12, started)
    for bad in ("conference-12-20261327T031509Z.webm", "conference-12-20261127T031509Z.webm.x",
                "../conference-12-20261127T031509Z.webm", "conference--20261127T031509Z.webm"):
        assert parse_recording_name(bad) is None, bad
    head = opus_head(channels=1)
    assert head[:8] == b"OpusHead" and len(head) == 19 and head[9] == 1
    keyframe = b"\x50\x42\x00\x9d\x01\x2a\x40\x01\xb4\x00"  # 320x180
    assert vp8_dimensions(keyframe) == (320, 180)
    assert vp8_dimensions(b"\x51" + keyframe[1:]) is None  # an inter frame
