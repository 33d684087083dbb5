"""A site's side of the bridge protocol, in Python: the endpoint agent, tests and
the benchmark join rooms with it.

It opens the signaling WebSocket, offers one audio and one video peer
connection (camera up on the first video line, one more line per video
stream the bridge sends this site), and keeps what it receives available to
its owner. `docs/signaling.md` describes the same protocol for other clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)

from bridge.agent.audio_frames import answered_ptime, send_opus_frames_of
from bridge.ice_policy import Network, filter_candidates

log = logging.getLogger(__name__)


# Redirects followed in one join (a room is on one node; more means it is moving).
MAX_REDIRECTS = 3


class JoinError(Exception):
    """The bridge refused the join or the media negotiation failed."""


class Redirected(Exception):
    """The node reached does not hold the conference's room: `redirect` (the message:
    `url`, `node`, `generation`) says which node does."""

    def __init__(self, redirect: dict[str, Any]) -> None:
        super().__init__(f"redirected to {redirect.get('url')}")
        self.redirect = redirect


@dataclass
class Received:
    """A track the bridge sends this site, by slot name ("chair", "floor", "grid:CODE", "mix")."""

    slot: str
    track: MediaStreamTrack
    receiver: RTCRtpReceiver | None = None


@dataclass
class SiteClient:
    """One site in one conference."""

    base_url: str
    conference_id: int
    token: str
    configuration: RTCConfiguration
    audio: MediaStreamTrack | None
    video: MediaStreamTrack | None
    receive_slots: int | None = None  # video lines to offer; default: all the bridge offers
    on_state: Callable[[dict[str, Any]], None] | None = None
    on_received: Callable[[Received], None] | None = None
    # Messages this class does not handle itself (e.g. a test call's result).
    on_message: Callable[[dict[str, Any]], None] | None = None
    # The signaling path; default: the conference room's.
    path: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    joined: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    closed_reason: str | None = None
    closed_detail: str | None = None  # e.g. "ended", "cancelled", "shutdown" for "closed"
    remote_networks: Sequence[Network] = ()  # remote candidates outside these are dropped
    # The last `redirect` message: followed while joining (`redirects` counts the hops),
    # or received after joining (the room moved to another node; `closed_reason`
    # "redirect", the owner joins again at its `url`).
    redirect: dict[str, Any] | None = None
    redirects: int = 0
    audio_frame_ms: int = 20  # the Opus frame sent, as the bridge's answer asked
    _session: aiohttp.ClientSession | None = None
    _ws: aiohttp.ClientWebSocketResponse | None = None
    _pcs: list[RTCPeerConnection] = field(default_factory=list)
    _answers: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    _reader: asyncio.Task[None] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def join(self, timeout: float = 15.0) -> None:
        """Connect signaling and media; returns once both answers are applied.

        On any failure everything opened so far is closed before raising."""
        try:
            await self._join(timeout)
        except BaseException:
            await self.close(leave=False)
            raise

    async def _join(self, timeout: float) -> None:
        self._session = aiohttp.ClientSession()
        for _hop in range(MAX_REDIRECTS + 1):
            url = self.base_url + (self.path
                                   or f"/api/v1/conferences/{self.conference_id}/signal")
            try:
                self._ws = await self._session.ws_connect(
                    url, headers={"Authorization": f"Bearer {self.token}"}, heartbeat=20,
                    max_msg_size=1024 * 1024)
            except aiohttp.WSServerHandshakeError as exc:
                raise JoinError(f"the bridge refused the join: HTTP {exc.status}") from None
            first = await self._ws.receive_json(timeout=timeout)
            if first.get("type") != "redirect" or not first.get("url"):
                break
            # The room is on another bridge node (docs/signaling.md): go there.
            self.redirect = first
            self.redirects += 1
            await self._ws.close()
            log.info("conference %s: redirected to node %s (%s)", self.conference_id,
                     first.get("node"), first["url"])
            self.base_url = str(first["url"]).rstrip("/")
        if first.get("type") == "redirect":
            # Still redirected after MAX_REDIRECTS hops (nodes pointing at each other
            # while the placement changes): the caller waits and asks again.
            raise Redirected(first)
        if first.get("type") != "joined":
            raise JoinError(f"the bridge refused the join: {first}")
        self.joined = first
        self._reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self._negotiate(), timeout)

    async def _negotiate(self) -> None:
        audio_pc = self._new_pc()
        audio_pc.addTransceiver(self.audio or "audio", direction="sendrecv"
                                if self.audio else "recvonly")
        self._watch(audio_pc, ["mix"])
        await self._offer(audio_pc, "audio")

        slots: list[str] = list(self.joined["slots"])
        if self.receive_slots is not None:
            slots = slots[: self.receive_slots]
        video_pc = self._new_pc()
        for index, _slot in enumerate(slots):
            if index == 0:
                video_pc.addTransceiver(self.video or "video",
                                        direction="sendrecv" if self.video else "recvonly")
            else:
                video_pc.addTransceiver("video", direction="recvonly")
        vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs
               if c.mimeType.lower() in ("video/vp8", "video/rtx")]
        for transceiver in video_pc.getTransceivers():
            transceiver.setCodecPreferences(vp8)
        self._watch(video_pc, slots)
        await self._offer(video_pc, "video")

    def _new_pc(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(self.configuration)
        self._pcs.append(pc)
        return pc

    def _watch(self, pc: RTCPeerConnection, slots: list[str]) -> None:
        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            transceivers = pc.getTransceivers()
            index = next((i for i, t in enumerate(transceivers) if t.receiver.track is track), 0)
            received = Received(slots[index] if index < len(slots) else f"line{index}", track,
                                transceivers[index].receiver if transceivers else None)
            if self.on_received is not None:
                self.on_received(received)

    async def _offer(self, pc: RTCPeerConnection, kind: str) -> None:
        await pc.setLocalDescription(await pc.createOffer())
        assert self._ws is not None
        await self._ws.send_json({"type": "offer", "pc": kind, "sdp": pc.localDescription.sdp})
        answer = await self._answers.get()
        if answer.get("type") == "error":
            raise JoinError(f"the bridge refused the {kind} offer: {answer['error']}")
        sdp = filter_candidates(answer["sdp"], self.remote_networks)
        if kind == "audio" and self.audio is not None:
            # The bridge's answer may ask for longer Opus packets (a=ptime, a=maxptime).
            self.audio_frame_ms = answered_ptime(sdp)
            send_opus_frames_of(pc.getTransceivers()[0].sender, self.audio_frame_ms)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            body = message.json()
            kind = body.get("type")
            if kind == "answer":
                self._answers.put_nowait(body)
            elif kind == "state":
                self.state = body
                if self.on_state is not None:
                    self.on_state(body)
            elif kind == "error":
                self.errors.append(body)
                self._answers.put_nowait(body)  # unblock a pending offer
            elif kind == "redirect":
                # The room moved to another bridge node: `redirect["url"]` is where to
                # join again (the owner does, e.g. with a new SiteClient).
                self.redirect = body
                self.closed_reason = kind
            elif kind in ("closed", "removed", "replaced"):
                if self.closed_reason != "redirect":
                    self.closed_reason = kind
                    self.closed_detail = body.get("reason")
            elif self.on_message is not None:
                self.on_message(body)
        self.ended.set()

    async def send(self, message: dict[str, Any]) -> None:
        """Send a control message (floor.request, floor.grant, mute, ...)."""
        assert self._ws is not None
        await self._ws.send_json(message)

    async def wait_state(self, predicate: Callable[[dict[str, Any]], bool],
                         timeout: float = 15.0) -> dict[str, Any]:
        """Wait until the room state satisfies `predicate`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self.state):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"room state never matched: {self.state}")
            await asyncio.sleep(0.02)
        return self.state

    @property
    def peer_connections(self) -> list[RTCPeerConnection]:
        """The audio connection, then the video connection (for their statistics)."""
        return list(self._pcs)

    async def drop_media(self) -> None:
        """Close the peer connections only (a network cut, as the far end sees it)."""
        for pc in self._pcs:
            await pc.close()

    async def close(self, *, leave: bool = True) -> None:
        """Leave the room and close everything."""
        if self._ws is not None and not self._ws.closed and leave:
            with contextlib.suppress(Exception):
                await self._ws.send_json({"type": "leave"})
        for pc in self._pcs:
            with contextlib.suppress(Exception):
                await pc.close()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 2)
        if self._session is not None:
            await self._session.close()
