"""A real service process with three real aiortc sites is killed (kill -9) mid-meeting
and started again on the same database (issue 15): the roll call shows the sites
dropped, not joined, until they rejoin; the floor holder, the queue, the mutes and
the lock are what they were; the recording goes on into a second file and both are
listed. On SQLite (the all-in-one process) and on PostgreSQL (a node with an id)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCConfiguration

from bridge.agent.site_client import SiteClient
from bridge.ice_policy import restrict_host_addresses
from harness.service_process import Service, service_env
from tests.support import create_scratch_database, drop_scratch_database
from tests.test_bridge_media import SITES, Site, close_to

CHAIR, NGA_SON, MUONG_LAT = "UBND-TINH", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT"
LOOPBACK = "127.0.0.1"
# Generous: conditions, not timing targets (nothing here measures speed).
WAIT = 60.0


async def call(service: Service, method: str, path: str, body: Any = None) -> Any:
    status, answer = await asyncio.to_thread(service.request, method, path, body)
    assert status < 300, (status, answer)
    return answer


async def until(what: str, check: Any, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.2)


async def rollcall(service: Service, cid: int) -> dict[str, str]:
    body = await call(service, "GET", f"/api/v1/conferences/{cid}/rollcall")
    return {e["code"]: e["state"] for e in body["endpoints"]}


async def join_all(service: Service, cid: int, tokens: dict[str, str]) -> dict[str, Site]:
    sites = {}
    for code in SITES:
        site = Site(code)
        client = SiteClient(service.base, cid, tokens[code], RTCConfiguration(iceServers=[]),
                            audio=site.tone, video=site.camera, on_received=site.received)
        await client.join()
        site.client = client
        sites[code] = site
    return sites


def client_of(site: Site) -> SiteClient:
    assert site.client is not None
    return site.client


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_env(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    """The service's database: its own SQLite file, or a scratch PostgreSQL database
    with a node id (the restarted node knows the rooms it held by it)."""
    if request.param == "sqlite":
        yield {}
        return
    url = await create_scratch_database()
    try:
        yield {"VCBRIDGE_DATABASE_URL": url, "VCBRIDGE_NODE_ID": "node-a"}
    finally:
        await drop_scratch_database(url)


async def test_a_killed_service_gives_its_room_back_as_it_was(
    tmp_path: Path, database_env: dict[str, str],
) -> None:
    restrict_host_addresses([LOOPBACK])  # this process's aiortc sites too
    env = service_env(VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK, **database_env)
    services: list[Service] = []
    sites: dict[str, Site] = {}
    try:
        first = Service(tmp_path / "service", env)
        services.append(first)
        await asyncio.to_thread(first.wait_healthy)
        await asyncio.to_thread(first.login)
        start = datetime.now(UTC) + timedelta(seconds=2)
        conference = await call(first, "POST", "/api/v1/conferences", {
            "title": "Giao ban tuần", "chair": CHAIR, "participants": list(SITES),
            "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat(),
            "setup_minutes": 0})
        cid = conference["id"]
        tokens = {code: (await call(first, "POST", f"/api/v1/endpoints/{code}/tokens",
                                    {}))["token"] for code in SITES}

        async def running() -> bool:
            body = await call(first, "GET", f"/api/v1/conferences/{cid}")
            return bool(body["status"] in ("open", "live"))

        await until("the room opens", running)
        sites = await join_all(first, cid, tokens)
        chair, nga_son, muong_lat = (client_of(sites[c]) for c in (CHAIR, NGA_SON, MUONG_LAT))

        async def all_joined_on(service: Service) -> bool:
            return set((await rollcall(service, cid)).values()) == {"joined"}

        await until("every site joined", lambda: all_joined_on(first))

        # The chair runs the meeting: Nga Son has the floor, Muong Lat waits its turn and
        # is muted, the room is locked and recorded.
        await nga_son.send({"type": "floor.request"})
        await chair.wait_state(lambda s: s.get("queue") == [NGA_SON])
        await chair.send({"type": "floor.grant", "endpoint": NGA_SON})
        await muong_lat.send({"type": "floor.request"})
        await chair.send({"type": "mute", "endpoint": MUONG_LAT, "muted": True})
        await chair.send({"type": "lock", "locked": True})
        await chair.send({"type": "record", "on": True})
        before = await chair.wait_state(lambda s: s.get("holder") == NGA_SON
                                        and s.get("queue") == [MUONG_LAT]
                                        and s.get("muted") == [MUONG_LAT]
                                        and s.get("locked") is True
                                        and s.get("recording") is True)
        cut = (await call(first, "GET", f"/api/v1/conferences/{cid}/recordings"))["recordings"]
        assert [r["recording"] for r in cut] == [True]
        await asyncio.sleep(2)  # a few seconds into the file

        # kill -9 mid-meeting: no goodbye to anyone.
        await asyncio.to_thread(first.kill)
        for site in sites.values():
            await client_of(site).close(leave=False)
            await site.stop()
        sites = {}

        second = Service(tmp_path / "service", env)
        services.append(second)
        await asyncio.to_thread(second.wait_healthy)
        await asyncio.to_thread(second.login)
        # Nobody has rejoined yet: the roll call says so (dropped, called back).
        assert await rollcall(second, cid) == dict.fromkeys(SITES, "dropped")
        events = await call(second, "GET", f"/api/v1/conferences/{cid}/record")
        dropped = [a["code"] for a in events["attendance"]
                   if a["intervals"] and a["intervals"][-1]["ended_by"] == "dropped"]
        assert sorted(dropped) == sorted(SITES)

        sites = await join_all(second, cid, tokens)
        chair = client_of(sites[CHAIR])
        after = await chair.wait_state(lambda s: len(s.get("present", [])) == 3)
        assert (after["holder"], after["queue"], after["muted"], after["locked"]) == (
            before["holder"], before["queue"], before["muted"], before["locked"])
        assert after["recording"] is True
        assert after["version"] >= before["version"]
        await until("every site joined again", lambda: all_joined_on(second))
        # Media flows again, the floor holder's picture in the chair's floor slot.

        async def sees_the_holder() -> bool:
            return close_to(sites[CHAIR].sees("floor"), SITES[NGA_SON][1])

        await until("the chair sees Nga Son on the floor", sees_the_holder)

        # The recording goes on in a second file; both are listed (the first one cut).
        listed = (await call(second, "GET", f"/api/v1/conferences/{cid}/recordings"))[
            "recordings"]
        assert [r["id"] for r in listed][:1] == [cut[0]["id"]]
        assert len(listed) == 2 and [r["recording"] for r in listed] == [False, True]
        record = await call(second, "GET", f"/api/v1/conferences/{cid}/record")
        assert [r["id"] for r in record["recordings"]] == [r["id"] for r in listed]
        await chair.send({"type": "record", "on": False})
        await chair.wait_state(lambda s: s.get("recording") is False)

        async def finished() -> bool:
            rows = (await call(second, "GET", f"/api/v1/conferences/{cid}/recordings"))[
                "recordings"]
            return not any(r["recording"] for r in rows) and rows[1]["duration"] is not None

        await until("the second recording is finished", finished)
    finally:
        for site in sites.values():
            await client_of(site).close(leave=False)
            await site.stop()
        for service in services:
            await asyncio.to_thread(service.stop)
