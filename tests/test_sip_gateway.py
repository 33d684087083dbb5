"""The SIP gateway client against a real Janus and a real baresip room (in a network
namespace): calls out start on handles registered ahead, since Janus's SIP plugin sets
up each handle's SIP stack one request at a time (about 100 ms each, so ten rooms
dialled at once used to wait a second behind one another); the handles are made again
while calls are up, and a gateway without ready handles still calls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection

from bridge.ice_policy import restrict_host_addresses, rtc_configuration
from bridge.sip.janus_gateway import JanusGateway, SipIdentity
from harness.baresip import RoomConfig, running_baresip
from harness.janus import running_janus
from harness.netns import Namespace
from tests.sip_support import require_sip_rig, sip_namespace
from tests.test_bridge_media import eventually


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    require_sip_rig()
    with sip_namespace("sipg") as ns:
        yield ns


async def offer() -> tuple[RTCPeerConnection, str]:
    """An audio offer (its media never connects here: the call's answer is what counts),
    advertising loopback only."""
    restrict_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, str(pc.localDescription.sdp)


@pytest.mark.parametrize("ready_calls", [2, 0])
async def test_calls_out_take_handles_registered_ahead_and_more_are_made(
        tmp_path: Path, namespace: Namespace, ready_calls: int) -> None:
    with running_janus(tmp_path / "janus", namespace) as janus, \
            running_baresip(tmp_path / "room", RoomConfig("room", 5070, video_codecs=()),
                            namespace) as room:
        gateway = JanusGateway(janus.url, SipIdentity(uri="sip:bridge@127.0.0.1"),
                               ready_calls=ready_calls)
        await gateway.start()
        pc, sdp = await offer()
        try:
            await gateway.wait_connected(15)
            await eventually(lambda: gateway.ready_calls_waiting == ready_calls)
            made_ahead = {handle.id for handle in gateway._ready}
            call = await gateway.call(room.uri, sdp)
            assert call.answer_sdp.startswith("v=0")
            assert gateway.status.legs == 1
            # The call went out on a handle made ahead (none without them), and another
            # is made while it is up.
            assert (call._handle.id in made_ahead) == (ready_calls > 0)
            await eventually(lambda: gateway.ready_calls_waiting == ready_calls)
            assert call._handle.id not in {handle.id for handle in gateway._ready}
            await call.hangup()
            await eventually(lambda: gateway.status.legs == 0)
        finally:
            await pc.close()
            await gateway.stop()
        assert gateway.ready_calls_waiting == 0  # gone with the session
