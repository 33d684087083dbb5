"""A SIP room system's call quality, from the RTCP and RTP of its leg: the room has no
agent to report its call, so its health's call figures are the bridge's view of the leg
(the room's audio as the bridge receives it through Janus, the receiver reports Janus
relays from the room), judged by the same rules as any site's, with `sip` as the source.

Real Janus, kamailio (the OPTIONS pings' path) and baresip in a network namespace; the
bridge dials the room with its own media leg (bridge/sip/sip_leg.py). Spoiling the link
between the bridge and the namespace raises `packet_loss` on the room."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bridge.wiring import SIP_GATEWAY
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
    manual_runner,
)
from tests.test_booking import book
from vcbridge.app import create_app
from vcbridge.core.clock import FixedClock

ROOM = "HUYEN-NGA-SON"
START = "2026-11-27T14:00:00+07:00"


async def health(client: Client, headers: dict[str, str], clock: FixedClock
                 ) -> dict[str, Any]:
    """The room's health; the test's clock follows real time (the checks poll every
    0.1 s), so the bridge's samples, stamped by it, are each newer than the last."""
    clock.set(clock.now() + timedelta(seconds=0.1))
    response = await client.get(f"/api/v1/health/{ROOM}", headers=headers)
    assert response.status == 200
    return dict(await response.json())


async def test_a_sip_rooms_health_shows_its_legs_call_figures_and_loss_on_it_fires(
    tmp_path: Path, database_url: str, clock: FixedClock,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    require_sip_rig(proxy=True)
    room = RoomConfig("ngason", free_udp_port(), audio_codecs=("PCMU",))
    with sip_namespace("sipq") as ns, running_janus(tmp_path / "janus", ns) as gateway, \
            running_kamailio(tmp_path / "kamailio", ns, "vcbridge") as proxy, \
            running_baresip(tmp_path / "room", room, ns):
        settings = loopback_settings(
            database_url, tmp_path,
            roster_file=roster_with_sip(tmp_path / "endpoints.yaml", {ROOM: room.uri}),
            sip_gateway_url=gateway.url, sip_probe_proxy=proxy.proxy_here,
            sip_probe_interval_seconds=0.5, sip_probe_timeout_seconds=0.4,
            # The bridge's media sampled (and the room judged) every half second.
            health_heartbeat_interval_seconds=0.5, health_persist_seconds=0.5,
            health_sweep_seconds=0.2,
            # The test room's camera sends 10 frames a second, the rule's default minimum.
            health_fps_min=5,
        ).model_copy(update={"ice_host_addresses": ["127.0.0.1", ns.here]})
        client = await aiohttp_client(create_app(settings, clock=clock))
        await client.app[SIP_GATEWAY].wait_connected(15)
        headers = bearer(await login(client, "admin", ADMIN_PASSWORD))
        conference = await book(client, headers, start=START,
                                end="2026-11-27T16:00:00+07:00", setup_minutes=0,
                                participants=["UBND-TINH", ROOM])
        runner = manual_runner(client.app, clock)
        clock.set(clock.now().replace(hour=7))  # 14:00 in Hanoi: live, the room dialled
        await runner.sync(conference["id"])
        await runner._tick()

        async def in_call() -> dict[str, Any] | None:
            body = await health(client, headers, clock)
            call = body["call"]
            measured = (call is not None and call["bridge"] is not None
                        and call["bridge"]["rtt_ms"] is not None
                        and call["bridge"]["jitter_ms"] is not None
                        and call["bridge"]["packet_loss_ratio"] is not None)
            # One window of a loaded machine may lose a packet: wait for a clean one.
            return body if measured and body["state"] == "ok" else None

        body = await eventually(in_call, "the room's leg measured by the bridge, ok",
                                timeout=40)
        call = body["call"]
        assert body["source"] == "sip" and body["reasons"] == []
        # No site view (the room reports nothing itself): the judged figures are the
        # bridge's, from the leg's RTP (loss, bit rates) and the room's RTCP (RTT, jitter).
        assert call["site"] is None and call["source"] is None
        bridge = call["bridge"]
        assert call["packet_loss_ratio"] == bridge["packet_loss_ratio"] < 0.02
        assert 0 < bridge["rtt_ms"] < 1000
        assert 0 <= bridge["jitter_ms"] < 30
        # PCMU at 50 packets a second is 64 kbit/s of payload: the room's audio arrives.
        assert bridge["bitrate_in_bps"] > 50_000

        ns.lose(0.25)  # a quarter of the packets on the link to Janus lost, both ways

        async def lossy() -> dict[str, Any] | None:
            body = await health(client, headers, clock)
            codes = [r["code"] for r in body["reasons"]]
            return body if "packet_loss" in codes else None

        body = await eventually(lossy, "packet_loss raised on the SIP room", timeout=30)
        assert body["source"] == "sip" and body["state"] != "ok"
        assert body["call"]["bridge"]["packet_loss_ratio"] > 0.02
        ns.lose(None)
