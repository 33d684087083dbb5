"""A SIP room system's presence from SIP OPTIONS: the bridge pings every SIP endpoint
of the roster through kamailio (as the calls go); each answer is the room's heartbeat
(health source `sip`): a room that answers is ok with its round trip, a stopped room
goes offline by the same rule as a silent agent (health_offline_after_seconds) and
comes back when restarted; the metrics say the same (vcbridge_sip_site_up, the input
of VcbridgeSipSiteUnreachable, whose delay promtool tests)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bridge.sip.options_probe import answer_code, host_port, options_request, reachable
from harness.baresip import RoomConfig, free_udp_port, running_baresip
from harness.janus import running_janus
from harness.kamailio import running_kamailio
from tests.conftest import Client
from tests.sip_support import require_sip_rig, roster_with_sip, sip_namespace
from tests.support import (
    ADMIN_PASSWORD,
    bearer,
    eventually,
    login,
    loopback_settings,
)
from vcbridge.app import create_app

ROOM, OTHER = "HUYEN-NGA-SON", "HUYEN-HAU-LOC"


async def sip_sites(client: Client) -> dict[str, dict[str, float]]:
    response = await client.get("/metrics")
    assert response.status == 200
    sites: dict[str, dict[str, float]] = {}
    for line in (await response.text()).splitlines():
        for name in ("vcbridge_sip_site_up", "vcbridge_sip_site_options_rtt_seconds"):
            if line.startswith(name + "{"):
                code = line.split('endpoint="')[1].split('"')[0]
                sites.setdefault(code, {})[name] = float(line.rsplit(" ", 1)[1])
    return sites


async def health(client: Client, headers: dict[str, str], code: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/health/{code}", headers=headers)
    assert response.status == 200
    return dict(await response.json())


async def test_a_stopped_room_goes_offline_by_options_and_comes_back(
    tmp_path: Path, database_url: str,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    require_sip_rig(proxy=True)
    room = RoomConfig("ngason", free_udp_port())
    with sip_namespace("sipo") as ns, running_janus(tmp_path / "janus", ns) as gateway, \
            running_kamailio(tmp_path / "kamailio", ns, "vcbridge") as proxy, \
            running_baresip(tmp_path / "room", room, ns) as baresip:
        # OTHER's room never existed: it is down from the first ping.
        roster = roster_with_sip(tmp_path / "endpoints.yaml", {
            ROOM: room.uri, OTHER: f"sip:hauloc@127.0.0.1:{free_udp_port()}"})
        settings = loopback_settings(
            database_url, tmp_path, roster_file=roster, sip_gateway_url=gateway.url,
            sip_probe_proxy=proxy.proxy_here, sip_probe_interval_seconds=0.5,
            sip_probe_timeout_seconds=0.4,
            # The health rule's times, shortened (the real clock runs: the sweep decides).
            health_heartbeat_interval_seconds=0.5, health_offline_after_seconds=2,
            health_persist_seconds=0.5, health_sweep_seconds=0.2)
        client = await aiohttp_client(create_app(settings))
        headers = bearer(await login(client, "admin", ADMIN_PASSWORD))

        async def up() -> dict[str, dict[str, float]] | None:
            sites = await sip_sites(client)
            room_up = sites.get(ROOM, {}).get("vcbridge_sip_site_up") == 1.0
            return sites if room_up and OTHER in sites else None

        sites = await eventually(up, "the room answering its OPTIONS", timeout=15)
        assert sites[ROOM]["vcbridge_sip_site_options_rtt_seconds"] > 0
        assert sites[OTHER]["vcbridge_sip_site_up"] == 0.0
        assert math.isnan(sites[OTHER]["vcbridge_sip_site_options_rtt_seconds"])
        # Only SIP endpoints are pinged: the agents' sites have no series.
        assert set(sites) == {ROOM, OTHER}

        async def ok() -> dict[str, Any] | None:
            room_health = await health(client, headers, ROOM)
            return room_health if room_health["state"] == "ok" else None

        room_health = await eventually(ok, "the answering room ok", timeout=15)
        assert room_health["source"] == "sip" and room_health["reasons"] == []
        assert room_health["network"]["rtt_ms"] > 0  # the ping's round trip
        other = await health(client, headers, OTHER)
        assert other["state"] == "offline" and other["source"] is None  # never answered

        baresip.stop()

        async def down() -> bool:
            return (await sip_sites(client))[ROOM]["vcbridge_sip_site_up"] == 0.0

        await eventually(down, "the stopped room down by OPTIONS", timeout=15)

        async def offline() -> dict[str, Any] | None:
            room_health = await health(client, headers, ROOM)
            return room_health if room_health["state"] == "offline" else None

        room_health = await eventually(offline, "the stopped room offline", timeout=15)
        assert [r["code"] for r in room_health["reasons"]] == ["no_heartbeat"]
        baresip.start()

        async def back() -> bool:
            return (await sip_sites(client))[ROOM]["vcbridge_sip_site_up"] == 1.0

        await eventually(back, "the restarted room up again", timeout=15)
        await eventually(ok, "the restarted room ok again", timeout=15)


def test_options_requests_and_answers() -> None:
    request = options_request("sip:room@10.0.0.7:5070", ("10.0.0.1", 40000),
                              "sip:vcbridge@proxy", "abc@vcbridge", "0123456789ab")
    text = request.decode()
    assert text.startswith("OPTIONS sip:room@10.0.0.7:5070 SIP/2.0\r\n")
    assert "Via: SIP/2.0/UDP 10.0.0.1:40000;branch=z9hG4bK0123456789ab;rport\r\n" in text
    assert text.endswith("Content-Length: 0\r\n\r\n")
    answer = b"SIP/2.0 200 OK\r\nCall-ID: abc@vcbridge\r\nCSeq: 1 OPTIONS\r\n\r\n"
    assert answer_code(answer, "abc@vcbridge") == 200
    assert answer_code(answer, "someone-else") is None  # not our request
    assert answer_code(b"\xff\xfe garbage", "abc@vcbridge") is None
    assert answer_code(b"SIP/2.0 OK\r\nCall-ID: abc@vcbridge\r\n\r\n", "abc@vcbridge") is None
    assert reachable(200) and reachable(404) and reachable(405)  # the room answered
    assert not reachable(408) and not reachable(480) and not reachable(503)
    assert not reachable(None)
    assert host_port("sip:room@10.0.0.7:5070;transport=udp") == ("10.0.0.7", 5070)
    assert host_port("sip:10.0.0.5") == ("10.0.0.5", 5060)
    assert host_port("sips:[::1]:5061") == ("::1", 5061)
    assert host_port("mailto:x") is None
