"""A SIP test rig: Janus and baresip rooms in a network namespace, the service in-process,
and a minimal aiortc media side for the SIP legs.

The media side stands in for the room's own SIP legs (bridge/sip/sip_leg.py) so the
control side (gateway, dialer, roll call) is tested against real Janus and real
baresip: one aiortc peer connection with a tone and a picture, offering PCMU/PCMA and
VP8 only (one video codec, so the room cannot answer one and send another). It tells
the roll call what the room would: joined when the media connects, dropped or left
when the call ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from bridge.ice_policy import rtc_configuration
from bridge.sip.dialer import HangupCallback
from harness import baresip, janus, kamailio, netns
from tests.support import skip_or_fail
from vcbridge.core.settings import DEFAULT_ROSTER


def require_sip_rig(*, proxy: bool = False) -> None:
    """Skip (fail in CI) when Janus, baresip or network namespaces (and with `proxy`,
    kamailio) are not available."""
    for reason in (netns.missing(), janus.missing(), baresip.missing(),
                   kamailio.missing() if proxy else None):
        if reason:
            skip_or_fail(reason)


@contextlib.contextmanager
def sip_namespace(tag: str) -> Iterator[netns.Namespace]:
    """A namespace for Janus and the rooms (see harness/janus.py for why)."""
    with netns.Namespace(tag, net=233) as ns:
        yield ns


def roster_with_sip(path: Path, rooms: dict[str, str]) -> Path:
    """The project's roster with `rooms` (code -> SIP URI) made SIP room systems."""
    raw = yaml.safe_load(DEFAULT_ROSTER.read_text(encoding="utf-8"))
    for entry in raw["endpoints"]:
        if entry["code"] in rooms:
            entry["sip"] = {"uri": rooms[entry["code"]]}
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


class AiortcLeg:
    """One SIP leg's media: an aiortc peer connection (the bridge is the offerer)."""

    def __init__(self, legs: AiortcLegs, conference_id: int, code: str) -> None:
        self._legs = legs
        self.conference_id = conference_id
        self.code = code
        self.pc = RTCPeerConnection(rtc_configuration([]))
        self.sink = MediaBlackhole()
        self.digits: list[str] = []
        for track in (AudioStreamTrack(), VideoStreamTrack()):
            transceiver = self.pc.addTransceiver(track, direction="sendrecv")
            codecs = RTCRtpSender.getCapabilities(track.kind).codecs
            wanted = ("audio/PCMU", "audio/PCMA") if track.kind == "audio" else ("video/VP8",)
            transceiver.setCodecPreferences([c for c in codecs if c.mimeType in wanted])
        self.pc.on("track", self.sink.addTrack)
        self.pc.on("connectionstatechange", self._state)
        self.joined = False

    async def _state(self) -> None:
        if self.pc.connectionState == "connected" and not self.joined:
            self.joined = True
            await self.sink.start()
            await self._legs.reports.attendance(self.conference_id, self.code, "joined")

    async def create_offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept_answer(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))

    async def answer_offer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    def dtmf(self, digit: str) -> None:
        self.digits.append(digit)

    async def close(self) -> None:
        await self.sink.stop()
        await self.pc.close()


class AiortcLegs:
    """`SipLegs` with `AiortcLeg`s, reporting to the roll call as a room would."""

    def __init__(self, reports: Any) -> None:
        self.reports = reports
        self.open_legs: dict[tuple[int, str], AiortcLeg] = {}

    async def open(self, conference_id: int, code: str, on_hangup: HangupCallback
                   ) -> AiortcLeg:
        leg = AiortcLeg(self, conference_id, code)
        self.open_legs[(conference_id, code)] = leg
        return leg

    async def close(self, conference_id: int, code: str, leg: Any, *, left: bool) -> None:
        if self.open_legs.get((conference_id, code)) is leg:
            del self.open_legs[(conference_id, code)]
        was_joined = leg.joined
        await leg.close()
        if was_joined:
            await self.reports.attendance(conference_id, code, "left" if left else "dropped")

    async def stop(self) -> None:
        for leg in list(self.open_legs.values()):
            await leg.close()
        await asyncio.sleep(0)
