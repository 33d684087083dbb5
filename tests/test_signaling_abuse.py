"""A hostile booked site cannot stall the room, flood it, or make it store what it invents.

Issue 11, findings 3, 4 and two of 6, with real aiortc sites in the room:
- offers with 1,000 media lines each took ~0.8 s of the event loop before being
  refused (aiortc parsed them first); back to back they took the other sites'
  video from 15 to 4 fps and their audio from 50 to 1.5 frames a second;
- an offer without a DTLS fingerprint was answered; deeply nested JSON ended in an
  unhandled RecursionError;
- a flood of floor requests wrote an audit row and an event row each, and its
  backlog kept the room busy after the sender stopped;
- a 400 KB junk field in a floor message was stored as it came."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc.mediastreams import MediaStreamError
from sqlalchemy import select

from bridge.agent.site_client import Received
from bridge.signaling import ROOMS
from harness.hostile_offers import aiortc_offer, thousand_line_offer, without_fingerprint
from tests.conftest import Client
from tests.support import loopback_settings
from tests.test_bridge_media import Site, eventually, join

# The shared fixture: an open conference of the three test sites.
from tests.test_bridge_media import room as room
from vcbridge.core.app_keys import DATABASE, SETTINGS
from vcbridge.core.db.models import AuditEvent, Event
from vcbridge.core.settings import Settings

CHAIR, NGA, MUONG = "UBND-TINH", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT"


@pytest.fixture
def settings(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    # The default signaling limits, unless a test overrides some (`request.param`).
    return loopback_settings(database_url, tmp_path, **getattr(request, "param", {}))


class CountingSite(Site):
    """A real site that counts what it receives per slot (video frames, audio frames)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.frames: Counter[str] = Counter()
        self.last: dict[str, float] = {}
        self.longest_gap: dict[str, float] = {}  # since the last `reset_gaps`

    async def _consume(self, item: Received) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await item.track.recv()
                now = loop.time()
                self.frames[item.slot] += 1
                if item.slot in self.last:
                    self.longest_gap[item.slot] = max(self.longest_gap.get(item.slot, 0.0),
                                                      now - self.last[item.slot])
                self.last[item.slot] = now
        except MediaStreamError:
            return

    def reset_gaps(self) -> None:
        self.longest_gap.clear()


class LoopLag:
    """How late a 10 ms sleep wakes up: the longest time the event loop was taken; and
    the garbage collector's longest pass meanwhile, to tell a pause of the test process's
    own collector (its heap holds what every earlier test left) from the service's."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.worst_gc = 0.0
        self._gc_start = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.worst = self.worst_gc = 0.0
        # What earlier tests left is collected now, not in the middle of the measurement.
        gc.collect()
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _on_gc(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.worst_gc = max(self.worst_gc, time.perf_counter() - self._gc_start)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, loop.time() - before - 0.01)

    async def stop(self) -> float:
        assert self._task is not None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self.worst


async def hostile_bodies() -> dict[str, tuple[str, str]]:
    """What the hostile site sends, each on a fresh connection: (message, expected error)."""
    thousand = await thousand_line_offer()
    audio = await aiortc_offer("audio")
    unsigned = without_fingerprint(audio)
    huge = audio + "".join(f"a=x-junk:{i:010d}{'y' * 80}\r\n" for i in range(5000))

    def offer(pc: str, sdp: str) -> str:
        return json.dumps({"type": "offer", "pc": pc, "sdp": sdp})

    return {
        "1000 media lines": (offer("video", thousand), "bad_offer"),
        "no fingerprint": (offer("audio", unsigned), "bad_offer"),
        "huge sdp": (offer("audio", huge), "bad_offer"),
        "deep json": ('{"type": "offer", "pc": ' + "[" * 100_000 + "]" * 100_000 + "}",
                      "bad_message"),
    }


async def signal(client: Client, conference_id: int, token: str
                 ) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(f"/api/v1/conferences/{conference_id}/signal",
                                 headers={"Authorization": f"Bearer {token}"})
    assert (await ws.receive_json(timeout=10))["type"] == "joined"
    return ws


async def errors_until_closed(ws: aiohttp.ClientWebSocketResponse) -> list[str]:
    codes = []
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT and message.json()["type"] == "error":
            codes.append(message.json()["error"]["code"])
    return codes


async def rates(client: Client, conference_id: int, sites: list[CountingSite],
                seconds: float) -> dict[str, float]:
    """Over `seconds`: the frames per second each site received (the other site's
    camera, the mix), the longest wait between two video frames, and the share of its
    20 ms mixing ticks the bridge's audio engine had to skip (it skips when it falls
    behind: audio never sent, the sites' loss)."""
    slots = {CHAIR: f"grid:{NGA}", NGA: "chair"}
    engine = client.app[ROOMS].rooms[conference_id].audio
    before = {s.code: (s.frames[slots[s.code]], s.frames["mix"]) for s in sites}
    ticks = engine.ticks
    loop = asyncio.get_running_loop()
    for site in sites:
        site.reset_gaps()
    start = loop.time()
    await asyncio.sleep(seconds)
    elapsed = loop.time() - start
    result = {"bridge audio loss %": max(0.0, 100 * (
        1 - (engine.ticks - ticks) / (elapsed * 1000 / engine.frame_ms)))}
    for site in sites:
        video, audio = before[site.code]
        result[f"{site.code} video"] = (site.frames[slots[site.code]] - video) / elapsed
        result[f"{site.code} audio"] = (site.frames["mix"] - audio) / elapsed
        result[f"{site.code} video gap ms"] = 1000 * site.longest_gap.get(slots[site.code], 0)
    return result


async def floor_rows(client: Client, conference_id: int) -> tuple[int, int, int]:
    """Floor audit rows, floor events, and the characters of their stored data."""
    async with client.app[DATABASE].read() as session:
        audits = (await session.scalars(select(AuditEvent).where(
            AuditEvent.action.like("floor.%")))).all()
        events = (await session.scalars(select(Event).where(
            Event.type.like("floor.%"), Event.conference_id == conference_id))).all()
        stored = sum(len(json.dumps(a.after)) for a in audits) + sum(
            len(json.dumps(e.data)) for e in events)
    return len(audits), len(events), stored


# Reconnecting is budgeted too (`signaling_joins_per_minute`, tested below); here the
# hostile site may reconnect freely, so that what is measured is the offers' cost.
@pytest.mark.parametrize("settings", [{"signaling_joins_per_minute": 600}], indirect=True)
async def test_a_hostile_site_neither_stalls_nor_floods_the_room(
    client: Client, room: Any
) -> None:
    conference_id, tokens = room
    chair, nga = CountingSite(CHAIR), CountingSite(NGA)
    probe = LoopLag()
    try:
        await join(client, conference_id, tokens[CHAIR], chair)
        await join(client, conference_id, tokens[NGA], nga)
        await eventually(lambda: chair.frames[f"grid:{NGA}"] > 30 and nga.frames["chair"] > 30
                         and chair.frames["mix"] > 100 and nga.frames["mix"] > 100)
        before = await rates(client, conference_id, [chair, nga], 3.0)

        # Expensive and unusable offers for 6 s, ten a second (the finding: 7 in 10 s),
        # each on a new connection (a refused offer closes the socket), while the two
        # sites' media is counted. Faster, this process's own client would measure itself
        # (it sends the 0.5 MB bodies through the same loop).
        bodies = await hostile_bodies()
        refused: Counter[str] = Counter()

        async def attack() -> None:
            deadline = asyncio.get_running_loop().time() + 6.0
            while asyncio.get_running_loop().time() < deadline:
                for name, (body, code) in bodies.items():
                    ws = await signal(client, conference_id, tokens[MUONG])
                    await ws.send_str(body)
                    assert await errors_until_closed(ws) == [code], name
                    refused[name] += 1
                    await asyncio.sleep(0.1)

        probe.start()
        attacker = asyncio.get_running_loop().create_task(attack())
        await asyncio.sleep(1.0)  # measure while the attack is well under way
        during = await rates(client, conference_id, [chair, nga], 4.0)
        await attacker
        worst_lag = await probe.stop()

        # Junk fields (19 x 400 KB), then a flood of floor requests at full speed.
        audits, events, stored = await floor_rows(client, conference_id)
        flooder = await signal(client, conference_id, tokens[MUONG])
        junk = "x" * 400_000
        for _ in range(19):
            await flooder.send_json({"type": "floor.request", "junk": junk})
        for index in range(1000):
            await flooder.send_json({"type": "floor.request" if index % 2 == 0
                                     else "floor.cancel"})
        codes = await asyncio.wait_for(errors_until_closed(flooder), 30)
        flood_audits, flood_events, flood_stored = await floor_rows(client, conference_id)
        await asyncio.sleep(1.0)  # no backlog: nothing more is written once it is closed
        assert await floor_rows(client, conference_id) == (
            flood_audits, flood_events, flood_stored)
        after = await rates(client, conference_id, [chair, nga], 3.0)

        print(f"\nrefused: {dict(refused)}; worst loop lag {worst_lag * 1000:.0f} ms")
        for name, figures in (("before", before), ("during", during), ("after", after)):
            print(name, {k: round(v, 1) for k, v in figures.items()})
        print(f"flood: {flood_audits - audits} audit rows, {flood_events - events} events, "
              f"{flood_stored - stored} characters stored; errors {Counter(codes)}")

        # Every hostile offer was refused with its error, cheaply.
        assert all(refused[name] >= 1 for name in bodies), refused
        # Generous bounds, which hold on a busy machine and catch the finding: before
        # the fix each such offer took the loop for 3.4-5.4 s here, the sites waited as
        # long for a video frame, and 65 % of the mix was never sent. With it (printed
        # above): a few to ~50 ms of lag, 15 fps, 50 audio frames a second, no frame
        # later than ~120 ms, 0 % of the audio skipped (the issue asks >= 14 fps and
        # < 1 % loss: what a quiet machine shows; asserted here is what a loaded one
        # keeps).
        assert worst_lag < 0.7, (f"the event loop was taken for {worst_lag:.2f} s (the longest "
                                 f"garbage collection meanwhile: {probe.worst_gc:.2f} s)")
        for figures in (during, after):
            # With two CPU hogs beside the other test runs: up to 16 % skipped, 41 frames/s.
            assert figures["bridge audio loss %"] < 40, figures
            for code in (CHAIR, NGA):
                assert figures[f"{code} video"] >= 7, figures
                assert figures[f"{code} audio"] >= 25, figures
                assert figures[f"{code} video gap ms"] < 1500, figures

        # The junk was refused, one error each, and the socket stayed open for them; the
        # flood was cut at the burst (30 messages) with `rate_limited`.
        assert codes.count("bad_message") == 19
        assert codes[-1] == "rate_limited" and codes.count("rate_limited") == 1
        assert flooder.close_code == 1008
        assert flood_audits - audits <= 30 and flood_events - events <= 30
        assert flood_stored - stored < 2_000  # no 400 KB field, nothing invented
        # The room is consistent: the flooder's seat was released as on any disconnect.
        assert chair.client is not None
        state = await chair.client.wait_state(lambda s: MUONG not in s["present"])
        assert set(state["present"]) == {CHAIR, NGA}
    finally:
        with contextlib.suppress(Exception):
            await probe.stop()
        await chair.stop()
        await nga.stop()


@pytest.mark.parametrize("settings", [{"signaling_offers_per_minute": 2}], indirect=True)
async def test_offers_past_the_per_minute_limit_are_refused(client: Client, room: Any) -> None:
    """The third offer in a minute on a connection limited to two: `rate_limited`, closed,
    and the site's seat released."""
    conference_id, tokens = room
    ws = await signal(client, conference_id, tokens[NGA])
    kinds = ["audio", "video", "video"]
    for kind in kinds:
        await ws.send_json({"type": "offer", "pc": kind, "sdp": await aiortc_offer(kind)})
    answers, codes = [], []
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT:
            body = message.json()
            if body["type"] == "answer":
                answers.append(body["pc"])
            elif body["type"] == "error":
                codes.append(body["error"]["code"])
    assert answers == ["audio", "video"]
    assert codes == ["rate_limited"] and ws.close_code == 1008
    the_room = client.app[ROOMS].rooms[conference_id]
    await eventually(lambda: NGA not in the_room.state.present, 10)


async def test_a_site_that_reconnects_in_a_loop_is_refused_before_the_upgrade(
    client: Client, room: Any
) -> None:
    """A refused offer closes the socket, so a hostile site reconnects to send the next:
    after 20 connections in a minute (the default) it gets 429 before any upgrade."""
    conference_id, tokens = room
    url = f"/api/v1/conferences/{conference_id}/signal"
    assert client.app[SETTINGS].signaling_joins_per_minute == 20
    loop = asyncio.get_running_loop()
    start, joined = loop.time(), 0
    while True:
        try:
            ws = await signal(client, conference_id, tokens[MUONG])
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 429
            break
        await ws.close()
        joined += 1
        assert joined < 100, "never refused"
    # The budget of 20, plus what it refilled meanwhile (one every 3 s: a slow machine).
    assert 20 <= joined <= 20 + (loop.time() - start) / 3 + 1, joined
    refused = await client.get(url, headers={"Authorization": f"Bearer {tokens[MUONG]}"})
    assert refused.status == 429
    assert (await refused.json())["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    # Another site of the room is not affected.
    other = await signal(client, conference_id, tokens[NGA])
    await other.close()
