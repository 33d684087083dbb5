"""A SIP room system in a real room: real Janus (SIP plugin) and a real baresip, two
aiortc agents beside it.

The room system is dialled out by the bridge (its leg offers, Janus calls baresip, the
answer comes back through Janus), then: its tone is heard in the agents' mix, the agents'
tone is decoded by baresip (its decoded-audio dump), the chair's picture reaches baresip
(its received snapshot), its camera reaches the chair's grid, and its keypad's `*1`
puts it in the floor queue.

Janus and baresip run in a network namespace the test makes (harness/janus.py,
harness/baresip.py): SIP and RTP between them on its loopback, Janus's API and ICE on its
end of a veth link, the bridge's ICE on this end. Needs root, janus and baresip: skips on
a developer's machine without them, fails in CI (VCBRIDGE_REQUIRE_ALL=1)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bridge.media_report import site_media
from bridge.signaling import ROOMS
from bridge.sip.janus_gateway import JanusGateway, SipIdentity
from harness.baresip import RoomConfig, running_baresip
from harness.janus import running_janus
from harness.netns import Namespace
from tests.conftest import Client
from tests.sip_support import require_sip_rig, sip_namespace
from tests.support import loopback_settings
from tests.test_bridge_media import SITES, Site, close_to, eventually, join
from tests.test_bridge_media import room as room
from tests.wav_tones import wav_tone_energy
from vcbridge.core.settings import Settings

CHAIR, AGENT, ROOM_SYSTEM = list(SITES)
ROOM_TONE = 1000
ROOM_COLOUR = (30, 30, 200)  # the camera file's blue


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    require_sip_rig()
    with sip_namespace("sipm") as ns:
        yield ns


@contextlib.asynccontextmanager
async def gateway(url: str) -> AsyncIterator[JanusGateway]:
    """The product's client of Janus's SIP plugin (bridge/sip/janus_gateway.py)."""
    client = JanusGateway(url, SipIdentity(uri="sip:bridge@127.0.0.1"))
    await client.start()
    await client.wait_connected(15)
    try:
        yield client
    finally:
        await client.stop()


def room_system(tmp_path: Path, *, audio: str, video: str, camera: Path | None = None
                ) -> RoomConfig:
    """A baresip room with a tone, a camera file, its decoded audio dumped and a control
    port, offering only `audio` and `video` ("" for no video)."""
    return RoomConfig("room", 5070, audio_codecs=(audio,),
                      video_codecs=(video,) if video else (), tone_hz=ROOM_TONE,
                      camera=camera, dump=tmp_path / "dump", control_port=4444)


@pytest.fixture
def settings(database_url: str, tmp_path: Path, namespace: Namespace) -> Settings:
    # The bridge's ICE on this end of the link: Janus (in the namespace) gathers only its
    # own end (harness/janus.py).
    return loopback_settings(database_url, tmp_path).model_copy(
        update={"ice_host_addresses": [namespace.here]})


@pytest.fixture
def camera(tmp_path: Path) -> Path:
    """A minute of a plain blue picture, as the room system's camera."""
    import av
    import numpy as np

    path = tmp_path / "camera.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        image = np.zeros((240, 320, 3), dtype=np.uint8)
        image[:] = ROOM_COLOUR
        for index in range(15 * 60):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def snapshot_colour(path: Path) -> tuple[int, int, int] | None:
    if not path.exists():
        return None
    import numpy as np

    image = np.asarray(Image.open(path).convert("RGB"))
    median = np.median(image.reshape(-1, 3), axis=0)
    return (int(median[0]), int(median[1]), int(median[2]))


@pytest.mark.parametrize(("audio_codec", "video_codec"),
                         [("G722", "VP8"), ("PCMU", "H264"), ("opus", "VP8")])
async def test_a_dialled_room_system_is_heard_seen_and_hears_and_sees_the_chair(
        client: Client, room: Any, namespace: Namespace, tmp_path: Path, camera: Path,
        audio_codec: str, video_codec: str) -> None:
    conference_id, tokens = room
    sites = {code: Site(code) for code in (CHAIR, AGENT)}
    config = room_system(tmp_path, audio=audio_codec, video=video_codec, camera=camera)
    with running_janus(tmp_path / "janus", namespace) as janus, \
            running_baresip(tmp_path / "room", config, namespace) as baresip:
        hangups: list[str] = []
        try:
            for code, site in sites.items():
                await join(client, conference_id, tokens[code], site)
            the_room = client.app[ROOMS].rooms[conference_id]
            leg = await the_room.connect_sip(ROOM_SYSTEM, hangups.append)
            offer = await leg.create_offer()
            async with gateway(janus.url) as sip:
                call = await sip.call(baresip.uri, offer)
                await leg.accept_answer(call.answer_sdp)
                assert leg.negotiated is not None
                assert (leg.negotiated.audio, leg.negotiated.video) == (audio_codec, video_codec)
                chair, agent = sites[CHAIR], sites[AGENT]
                # The room system's tone in both agents' mix.
                await eventually(lambda: all(len(s.audio) >= 50 for s in sites.values()))
                await eventually(lambda: chair.heard(ROOM_TONE) > 50 * max(
                    chair.heard(3000.0), 1.0) and agent.heard(ROOM_TONE) > 50 * max(
                    agent.heard(3000.0), 1.0), 20)
                # The agents' tones in what baresip decoded.
                wavs: list[Path] = []

                def decoded() -> bool:
                    wavs[:] = baresip.decoded_wavs()
                    return bool(wavs) and all(
                        wav_tone_energy(wavs[-1], SITES[c][0]) > 0.05
                        for c in (CHAIR, AGENT))
                await eventually(decoded, 20)
                # The room's camera in the chair's grid.
                await eventually(lambda: close_to(chair.sees(f"grid:{ROOM_SYSTEM}"),
                                                  ROOM_COLOUR), 20)
                # The chair's picture at the room system: it shows the main video (here
                # the active speaker) else the chair; with the other agent muted by the
                # chair, nobody but the chair and the room itself can be the speaker.
                assert chair.client is not None
                await chair.client.send({"type": "mute", "endpoint": AGENT, "muted": True})
                await chair.client.wait_state(lambda s: AGENT in s.get("muted", []))
                snapshot = tmp_path / "received.png"
                for _attempt in range(40):
                    await baresip.command("snapshot_recv", str(snapshot))
                    await asyncio.sleep(0.5)
                    if close_to(snapshot_colour(snapshot), SITES[CHAIR][1]):
                        break
                assert close_to(snapshot_colour(snapshot), SITES[CHAIR][1]), \
                    snapshot_colour(snapshot)
                # The room system is in the roll call, and in the metrics' view of the sites,
                # its jitter from the RTCP receiver reports of its leg (in its codec's
                # clock). Its round trip needs a report answering one of our sender reports
                # through Janus: seen after a few seconds, not asserted here.
                assert ROOM_SYSTEM in the_room.snapshot()["present"]
                registry = client.app[ROOMS]
                await eventually(lambda: site_media(registry)[ROOM_SYSTEM]
                                 .jitter_seconds is not None, 20)
                media = site_media(registry)[ROOM_SYSTEM]
                assert media.packets_received and media.frames_received
                assert media.bytes_sent > 0 and media.packets_lost == 0
                assert media.jitter_seconds is not None and 0 <= media.jitter_seconds < 0.5
                assert leg.counters.unexpected_payload_types == 0
                # Its keypad: *1 (RFC 4733 in its audio) puts it in the floor queue.
                keys: list[str] = []
                leg.on_dtmf = keys.append
                # Pressed as a person does, one key then the other (baresip's `sndcode *1`
                # would replace the first key's event before it is sent).
                await baresip.command("sndcode", "*")
                await asyncio.sleep(0.5)
                await baresip.command("sndcode", "1")
                for _wait in range(200):
                    if the_room.snapshot()["queue"] == [ROOM_SYSTEM]:
                        break
                    await asyncio.sleep(0.1)
                assert keys == ["*", "1"], (keys, leg.counters)
                assert the_room.snapshot()["queue"] == [ROOM_SYSTEM]
                await chair.client.wait_state(lambda s: s.get("queue") == [ROOM_SYSTEM])
            await the_room.disconnect_sip(leg, left=True)
            assert ROOM_SYSTEM not in the_room.snapshot()["present"]
        finally:
            for site in sites.values():
                await site.stop()


async def test_an_audio_only_room_system_joins_with_audio(
        client: Client, room: Any, namespace: Namespace, tmp_path: Path) -> None:
    """A room system with no video codec rejects the video line (port 0): the bridge makes
    it inactive before aiortc reads it, and the call goes on with audio both ways."""
    conference_id, tokens = room
    chair = Site(CHAIR)
    config = room_system(tmp_path, audio="PCMA", video="")
    with running_janus(tmp_path / "janus", namespace) as janus, \
            running_baresip(tmp_path / "room", config, namespace) as baresip:
        try:
            await join(client, conference_id, tokens[CHAIR], chair)
            the_room = client.app[ROOMS].rooms[conference_id]
            leg = await the_room.connect_sip(ROOM_SYSTEM)
            offer = await leg.create_offer()
            async with gateway(janus.url) as sip:
                answer = (await sip.call(baresip.uri, offer)).answer_sdp
                assert "m=video 0 " in answer  # what aiortc alone would raise on
                await leg.accept_answer(answer)
                assert leg.negotiated is not None
                assert (leg.negotiated.audio, leg.negotiated.video) == ("PCMA", None)
                await eventually(lambda: len(chair.audio) >= 50)
                await eventually(lambda: chair.heard(ROOM_TONE) > 50 * max(
                    chair.heard(3000.0), 1.0), 20)
                await eventually(lambda: bool(baresip.decoded_wavs()) and
                                 wav_tone_energy(baresip.decoded_wavs()[-1],
                                                 SITES[CHAIR][0]) > 0.3, 20)
                assert ROOM_SYSTEM not in the_room.sources  # no camera to show
        finally:
            await chair.stop()
