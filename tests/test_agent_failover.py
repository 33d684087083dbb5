"""The endpoint agent with several controllers and bridge nodes: it fails over to the
next controller when one dies (API, heartbeats, event stream), follows a node's
`redirect` to the node holding the room, and moves when the room is placed anew."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.agent.endpoint_agent import ROOM_PLACED, EndpointAgent
from bridge.agent.settings import AgentConfigError
from bridge.signaling import ROOMS
from harness.service_process import Service, free_port, service_env
from tests.conftest import Client
from tests.support import (
    create_scratch_database,
    drop_scratch_database,
    loopback_agent,
    loopback_settings,
    manual_runner,
)
from tests.test_booking import book
from vcbridge.cli import agent_settings, build_parser
from vcbridge.core.clock import FixedClock
from vcbridge.core.settings import Settings, load_settings

SITE = "HUYEN-NGA-SON"
LOOPBACK = "127.0.0.1"
REDIRECT_CLOSE_CODE = 4307  # docs/signaling.md


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The in-process app's settings: its bridge on loopback only."""
    return loopback_settings(database_url, tmp_path)


async def until(check: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    """Wait until `check()` is truthy (fails after `timeout`: only a hung agent takes it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := check()):
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return result


class Redirector:
    """A bridge node that holds no room: every signaling connection gets `redirect` to
    `target` (as docs/signaling.md says a node answers for a room placed elsewhere)."""

    def __init__(self) -> None:
        self.target: dict[str, Any] = {}
        self.hits = 0
        self.app = web.Application()
        self.app.router.add_get("/api/v1/conferences/{id}/signal", self.signal)

    async def signal(self, request: web.Request) -> web.WebSocketResponse:
        self.hits += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "redirect", **self.target})
        await ws.close(code=REDIRECT_CLOSE_CODE)
        return ws


def room_placed(conference: int, node: str, url: str, generation: int) -> dict[str, Any]:
    """A `conference.room_placed` event as the stream carries it."""
    return {"seq": 10_000 + generation, "type": ROOM_PLACED, "conference": conference,
            "data": {"node": node, "url": url, "generation": generation}}


async def test_agent_follows_a_redirect_to_the_node_holding_the_room_and_moves_with_it(
    client: Client, admin: dict[str, str], booker: dict[str, str], clock: FixedClock,
) -> None:
    conference = await book(client, booker, participants=["UBND-TINH", SITE],
                            start="2026-11-27T10:15:00+07:00", end="2026-11-27T11:00:00+07:00")
    cid = conference["id"]
    await manual_runner(client.app, clock).sync(cid)  # the room opens on the app's bridge
    holder = str(client.make_url("")).rstrip("/")
    redirector = Redirector()
    redirector.target = {"url": holder, "node": "node-b", "generation": 2}
    server = TestServer(redirector.app, host=LOOPBACK)
    await server.start_server()
    elsewhere = str(server.make_url("")).rstrip("/")
    response = await client.post(f"/api/v1/endpoints/{SITE}/tokens", json={}, headers=admin)
    agent = EndpointAgent(loopback_agent(holder, SITE, (await response.json())["token"]))
    # The last word the agent had: the room is on node A (which no longer holds it).
    agent.on_event(room_placed(cid, "node-a", elsewhere, 1))
    task = asyncio.create_task(agent.run())
    try:
        await until(lambda: agent.stats()["joined"] == [cid], "the join through node B")
        room = client.app[ROOMS].rooms[cid]
        assert list(room.connections) == [SITE]
        stats = agent.stats()
        assert redirector.hits == 1, "node A was asked once, then the redirect was followed"
        assert stats["redirects"] == 1 and stats["join_failures"] == 0, stats
        assert stats["placements"] == {cid: holder}

        # The controller moves the room to node A (generation 3): the agent leaves node B
        # for it; node A sends it back to B, and it joins there again.
        redirector.target = {"url": holder, "node": "node-b", "generation": 4}
        agent.on_event(room_placed(cid, "node-a", elsewhere, 3))
        await until(lambda: agent.stats()["joins"] == 2 and agent.stats()["joined"] == [cid],
                    "the second join after the move")
        assert redirector.hits == 2
        assert agent.stats()["redirects"] == 2
        # An older placement (generation 1) does not move it again.
        agent.on_event(room_placed(cid, "node-a", elsewhere, 1))
        await asyncio.sleep(0.3)
        assert redirector.hits == 2 and agent.stats()["joins"] == 2
        await until(lambda: agent.stats()["received_frames"].get("mix", 0) > 0, "audio")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await server.close()


def test_vcbridge_agent_takes_several_controller_urls_from_flags_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = build_parser().parse_args([
        "agent", "--server", "http://10.20.0.5:8080/", "--server",
        "http://10.20.0.6:8080, http://10.20.0.7:8080", "--endpoint", SITE])
    settings = agent_settings(args, "vca_token", load_settings())
    assert settings.servers == ("http://10.20.0.5:8080", "http://10.20.0.6:8080",
                                "http://10.20.0.7:8080")
    assert settings.server == "http://10.20.0.5:8080"

    monkeypatch.setenv("VCBRIDGE_AGENT_SERVERS", "https://vc1.example, https://vc2.example/")
    args = build_parser().parse_args(["agent", "--endpoint", SITE])
    assert agent_settings(args, "vca_token", load_settings()).servers == (
        "https://vc1.example", "https://vc2.example")

    monkeypatch.delenv("VCBRIDGE_AGENT_SERVERS")
    with pytest.raises(AgentConfigError, match="--server"):
        agent_settings(args, "vca_token", load_settings())


async def test_agent_uses_the_next_controller_when_the_first_cannot_be_reached(
    client: Client, admin: dict[str, str],
) -> None:
    dead = f"http://{LOOPBACK}:{free_port()}"  # nothing listens there
    live = str(client.make_url("")).rstrip("/")
    response = await client.post(f"/api/v1/endpoints/{SITE}/tokens", json={}, headers=admin)
    agent = EndpointAgent(loopback_agent(f"{dead},{live}", SITE,
                                         (await response.json())["token"]))
    task = asyncio.create_task(agent.run())
    try:
        await until(lambda: agent.stats()["stream_connected"], "the event stream")
        stats = agent.stats()
        assert stats["controller"] == live and stats["controller_failovers"] == 1, stats
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- two controller processes on PostgreSQL, the first killed -------------------------------


@pytest.fixture
def scratch_url() -> Iterator[str]:
    url = asyncio.run(create_scratch_database())
    try:
        yield url
    finally:
        asyncio.run(drop_scratch_database(url))


def last_heartbeat(service: Service) -> datetime | None:
    status, body = service.request("GET", f"/api/v1/health/{SITE}")
    assert status == 200, body
    value = body.get("last_heartbeat")
    return datetime.fromisoformat(value) if value else None


@pytest.mark.postgres
async def test_agent_keeps_heartbeats_events_and_meetings_when_its_controller_is_killed(
    tmp_path: Path, scratch_url: str,
) -> None:
    env = service_env(VCBRIDGE_DATABASE_URL=scratch_url, VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK)
    started: list[Service] = []

    def start(name: str, **extra: str) -> Service:
        service = Service(tmp_path / name, {**env, **extra})
        started.append(service)
        service.wait_healthy()
        service.login()
        return service

    try:
        # The first is a controller only (API, event stream, scheduler); the second is
        # a controller and the only bridge node, so the meeting's room is on it.
        first = await asyncio.to_thread(start, "a", VCBRIDGE_ROLES="api,scheduler")
        second = await asyncio.to_thread(start, "b")
        status, issued = first.request("POST", f"/api/v1/endpoints/{SITE}/tokens",
                                       {"label": "failover test"})
        assert status == 201, issued
        agent = EndpointAgent(loopback_agent(first.base, SITE, issued["token"],
                                             servers=[second.base], heartbeat_seconds=1.5))
        task = asyncio.create_task(agent.run())
        try:
            await until(lambda: agent.events.up and agent.heartbeats.counts["heartbeats"] > 0,
                        "the stream and a heartbeat through the first controller", 20)
            assert agent.stats()["controller"] == first.base

            await asyncio.to_thread(first.kill)
            killed = datetime.now(UTC)
            # Heartbeats reach the second controller, which saw none from the agent before.
            await until(lambda: agent.stats()["controller"] == second.base
                        and agent.events.up, "the stream through the second controller", 20)
            seen = await until(
                lambda: (last := last_heartbeat(second)) is not None and last > killed and last,
                "a heartbeat received by the second controller after the kill", 20)
            assert seen > killed

            # Events keep coming: a meeting booked now (through the second controller,
            # whose scheduler takes over) invites the agent, which joins it.
            start_at = datetime.now(UTC) + timedelta(seconds=3)
            status, conference = second.request("POST", "/api/v1/conferences", {
                "title": "Họp sau sự cố", "chair": "UBND-TINH",
                "participants": ["UBND-TINH", SITE], "start": start_at.isoformat(),
                "end": (start_at + timedelta(seconds=60)).isoformat(), "setup_minutes": 0})
            assert status == 201, conference
            cid = conference["id"]
            await until(lambda: agent.stats()["joined"] == [cid],
                        "the agent to join the meeting through the second controller", 40)

            def roll_state() -> str:
                status, roll = second.request("GET", f"/api/v1/conferences/{cid}/rollcall")
                assert status == 200, roll
                return str(next(e["state"] for e in roll["endpoints"] if e["code"] == SITE))

            await until(lambda: roll_state() == "joined", "the roll call to show it joined")
            stats = agent.stats()
            assert stats["controller_failovers"] >= 1 and stats["events"] > 0, stats
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        for service in started:
            service.stop()


@pytest.mark.postgres
async def test_agent_follows_its_room_across_real_nodes_redirects_and_a_kill_9(
    tmp_path: Path, scratch_url: str,
) -> None:
    env = service_env(VCBRIDGE_DATABASE_URL=scratch_url, VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK)
    started: list[Service] = []

    def start_all() -> tuple[Service, dict[str, Service]]:
        api = Service(tmp_path / "api", {**env, "VCBRIDGE_ROLES": "api,scheduler"})
        started.append(api)
        api.wait_healthy()  # it migrates the database first
        api.login()
        nodes = {name: Service(tmp_path / name, env, command=("bridge-node", "--node-id", name))
                 for name in ("node-a", "node-b")}
        started.extend(nodes.values())
        for node in nodes.values():
            node.wait_healthy()
        return api, nodes

    try:
        api, nodes = await asyncio.to_thread(start_all)
        status, issued = api.request("POST", f"/api/v1/endpoints/{SITE}/tokens",
                                     {"label": "node test"})
        assert status == 201, issued
        # The agent knows only the controller: where the media goes, it learns.
        agent = EndpointAgent(loopback_agent(api.base, SITE, issued["token"]))
        task = asyncio.create_task(agent.run())
        try:
            await until(lambda: agent.events.up, "the event stream", 20)
            await asyncio.sleep(1.5)  # both nodes have heartbeaten: both can take the room
            start_at = datetime.now(UTC) + timedelta(seconds=3)
            status, conference = api.request("POST", "/api/v1/conferences", {
                "title": "Họp hai nút", "chair": "UBND-TINH",
                "participants": ["UBND-TINH", SITE], "start": start_at.isoformat(),
                "end": (start_at + timedelta(seconds=120)).isoformat(), "setup_minutes": 0})
            assert status == 201, conference
            cid = conference["id"]
            await until(lambda: agent.stats()["joined"] == [cid], "the join", 40)
            status, body = api.request("GET", f"/api/v1/conferences/{cid}")
            placed = body["bridge"]
            assert placed and placed["url"] in {n.base for n in nodes.values()}, body
            holder = next(n for n in nodes.values() if n.base == placed["url"])
            other = next(n for n in nodes.values() if n is not holder)
            # Its media went straight to the node holding the room.
            assert agent.stats()["placements"] == {cid: holder.base}
            redirects = agent.stats()["redirects"]  # 0, or 1 if it asked before the placement

            # A (false) word that the room moved to the other node: the agent goes
            # there, the other node redirects it back, and it joins the holder again.
            joins = agent.stats()["joins"]
            agent.on_event(room_placed(cid, "elsewhere", other.base, placed["generation"] + 1))
            await until(lambda: agent.stats()["joins"] == joins + 1
                        and agent.stats()["joined"] == [cid],
                        "the join again after the redirect", 30)
            stats = agent.stats()
            assert stats["redirects"] == redirects + 1, stats
            assert stats["placements"] == {cid: holder.base}, stats

            # The node holding the room dies: the agent's media drops, it asks the
            # controller where the room is now and joins the other node.
            joins = stats["joins"]
            await asyncio.to_thread(holder.kill)
            await until(lambda: agent.stats()["joins"] > joins
                        and agent.stats()["joined"] == [cid]
                        and agent.stats()["placements"] == {cid: other.base},
                        "the join on the surviving node", 60)
            status, body = api.request("GET", f"/api/v1/conferences/{cid}")
            assert body["bridge"]["url"] == other.base, body
            assert body["bridge"]["generation"] > placed["generation"]
            frames = agent.stats()["received_frames"].get("mix", 0)
            await until(lambda: agent.stats()["received_frames"].get("mix", 0) > frames,
                        "audio from the surviving node")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        for service in started:
            service.stop()
