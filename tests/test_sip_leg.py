"""A SIP leg against a hostile room system, without Janus: an aiortc peer on loopback plays
the room (Janus passes SDP and RTP through, so what it would relay is what the peer
sends). Malformed answers are refused with a reason and leave the room as it was; audio
of a payload type the room did not negotiate is counted and never mixed."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtp import RtpPacket

from bridge import control_messages as messages
from bridge import floor_control as floor
from bridge.agent.generated_media import ToneTrack
from bridge.ice_policy import restrict_host_addresses
from bridge.peer_session import IceSettings
from bridge.room import Room
from bridge.sip.sdp_munging import SipMediaError
from tests.test_bridge_media import eventually

CHAIR, ROOM_SYSTEM = "UBND-TINH", "HUYEN-MUONG-LAT"


class Hooks:
    """What the room reports, kept for the test."""

    def __init__(self) -> None:
        self.attendance_events: list[tuple[str, str]] = []

    async def attendance(self, conference_id: int, code: str, kind: str) -> None:
        self.attendance_events.append((code, kind))

    async def floor_action(self, *args: Any, **kwargs: Any) -> None:
        return None


@pytest.fixture
async def room() -> Any:
    restrict_host_addresses(["127.0.0.1"])
    ice = IceSettings(RTCConfiguration(iceServers=[]),
                      [ipaddress.ip_network("127.0.0.0/8")])
    the_room = Room(1, CHAIR, [CHAIR, ROOM_SYSTEM], ice, Hooks())
    the_room.start()
    yield the_room
    await the_room.close("ended")


@pytest.mark.parametrize(("answer", "reason"), [
    ("not sdp at all", "malformed"),
    ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n",
     "no-common-codec"),
    ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
     "a=rtpmap:0 PCMU/8000\r\n", "malformed"),  # no ICE, no DTLS: aiortc refuses it
])
async def test_a_hostile_answer_is_refused_and_the_room_is_unaffected(
        room: Room, answer: str, reason: str) -> None:
    leg = await room.connect_sip(ROOM_SYSTEM)
    await leg.create_offer()
    with pytest.raises(SipMediaError) as caught:
        await leg.accept_answer(answer)
    assert caught.value.reason == reason
    assert ROOM_SYSTEM not in room.audio.pcm_outputs and ROOM_SYSTEM not in room.audio.outputs
    await room.disconnect_sip(leg, left=False)
    assert ROOM_SYSTEM not in room.connections
    assert room.snapshot()["present"] == []
    # The room goes on: the site may be dialled again.
    again = await room.connect_sip(ROOM_SYSTEM)
    assert room.connections[ROOM_SYSTEM].peers is again.peers


async def test_audio_of_another_payload_type_than_the_one_chosen_is_not_mixed(
        room: Room) -> None:
    """The room answers PCMU (first) and PCMA, then sends PCMA, and also a payload type it
    never negotiated (G.729, 18): the leg decodes only what it chose; aiortc's router drops
    the unknown type before the leg; the mix goes on."""
    leg = await room.connect_sip(ROOM_SYSTEM)
    offer = await leg.create_offer()
    peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        # A G.711 room: it only knows PCMU and PCMA (and the keypad's telephone-event).
        lines = []
        for line in offer.splitlines():
            if line.startswith("m=audio "):
                parts = line.split()
                line = " ".join([*parts[:3], "0", "8", parts[-1]])
            if line.startswith(("a=rtpmap:96 ", "a=rtpmap:9 ", "a=fmtp:96 ")):
                continue
            lines.append(line)
        await peer.setRemoteDescription(RTCSessionDescription("\r\n".join(lines) + "\r\n",
                                                              "offer"))
        for transceiver in peer.getTransceivers():
            if transceiver.kind == "audio":
                transceiver.sender.replaceTrack(ToneTrack(700.0))
                transceiver.direction = "sendrecv"
                audio = transceiver
            else:
                transceiver.direction = "inactive"
        await peer.setLocalDescription(await peer.createAnswer())
        await leg.accept_answer(peer.localDescription.sdp)
        assert leg.negotiated is not None and leg.negotiated.audio == "PCMU"
        await eventually(lambda: leg.counters.decoded > 20)
        # The "room" now sends PCMA (negotiated, not chosen), then G.729 (never negotiated),
        # on its stream, ahead of its own sequence numbers.
        stats = room.audio.stats[ROOM_SYSTEM]
        assert stats.highest_seq is not None
        start, before, decoded = stats.highest_seq + 100, stats.packets, leg.counters.decoded
        for number in range(40):
            payload_type = 8 if number < 30 else 18
            packet = RtpPacket(payload_type=payload_type, sequence_number=(start + number) % 65536,
                               timestamp=number * 160, ssrc=audio.sender._ssrc,
                               payload=b"\xd5" * 160)
            await audio.sender.transport._send_rtp(bytes(packet.serialize()))
        await eventually(lambda: leg.counters.unexpected_payload_types == 30)
        await asyncio.sleep(0.2)
        assert leg.counters.unexpected_payload_types == 30  # G.729 never reached the leg
        assert leg.counters.decode_errors == 0
        # Not one of them reached the mixer: it counts exactly the PCMU packets decoded.
        assert stats.packets - before == leg.counters.decoded - decoded
    finally:
        await peer.close()


async def test_a_room_system_that_calls_in_is_answered_and_mixed(room: Room) -> None:
    """Dial-in: the room system offers (PCMA and VP8 here, as Janus relays a room's
    INVITE), the leg answers; its audio reaches the mix and the mix reaches it."""
    peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    received: list[Any] = []
    readers: list[asyncio.Future[None]] = []
    try:
        audio = peer.addTransceiver(ToneTrack(700.0), "sendrecv")
        audio.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("audio").codecs
                                   if c.mimeType == "audio/PCMA"])
        video = peer.addTransceiver("video", "sendrecv")
        video.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                   if c.mimeType in ("video/VP8", "video/rtx")])

        @peer.on("track")
        def _track(track: Any) -> None:
            async def consume() -> None:
                while True:
                    received.append(await track.recv())
            if track.kind == "audio":
                readers.append(asyncio.ensure_future(consume()))

        await peer.setLocalDescription(await peer.createOffer())
        leg = await room.connect_sip(ROOM_SYSTEM)
        answer = await leg.answer_offer(peer.localDescription.sdp)
        assert leg.negotiated is not None
        assert (leg.negotiated.audio, leg.negotiated.video) == ("PCMA", "VP8")
        await peer.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await eventually(lambda: leg.counters.decoded > 20 and len(received) > 20)
        assert received[-1].sample_rate == 8000  # the mix, in the room's own codec
        assert ROOM_SYSTEM in room.sources  # its camera is a source of the room
        assert audio.sender.track is not None
    finally:
        await peer.close()
        for reader in readers:
            reader.cancel()


async def test_the_room_hangs_up_a_room_system_the_chair_removes(room: Room) -> None:
    """A SIP site has no signaling channel: the chair's removal (and the room's end, below)
    reach the gateway through `on_hangup`, once."""
    hangups: list[str] = []
    leg = await room.connect_sip(ROOM_SYSTEM, hangups.append)
    await leg.create_offer()
    await room.control(CHAIR, messages.Targeted(type="remove", endpoint=ROOM_SYSTEM))
    assert hangups == ["removed"]
    assert ROOM_SYSTEM not in room.connections
    assert leg.peers.closed
    # Removed: the redial cannot seat it again.
    with pytest.raises(floor.FloorError):
        await room.connect_sip(ROOM_SYSTEM)
    await room.close("ended")
    assert hangups == ["removed"]


async def test_the_room_s_end_hangs_up_its_room_systems(room: Room) -> None:
    hangups: list[str] = []
    await room.connect_sip(ROOM_SYSTEM, hangups.append)
    await room.close("ended")
    assert hangups == ["closed"] and not room.connections
