"""The bridge's side of a pre-flight test call, the echo:
`GET /api/v1/endpoints/{code}/test-call`.

Before a conference an endpoint agent proves that media really flows both
ways between it and the bridge: it connects as it would to a room (the same
messages as `signal`, see `docs/signaling.md`), and the bridge sends the
site's own media straight back: its Opus packets on the audio connection,
its VP8 frames on the one video line, through the same receive taps and
outbound tracks as a conference (no decoding, no encoding). The site counts
what comes back; the bridge tells it, when it leaves, what it received.

A test call lasts at most `MAX_SECONDS`; one per endpoint at a time (a new
one replaces the old, as a reconnecting site does in a room)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from aiohttp import WSMsgType, web
from aiortc.rtp import RtpPacket
from sqlalchemy import select

from bridge.peer_session import IceSettings, OfferError, PeerSession
from bridge.video_router import VideoSource
from vcbridge.core.app_keys import DATABASE, SETTINGS
from vcbridge.core.db.models import Endpoint
from vcbridge.core.http.auth_middleware import require_principal
from vcbridge.core.http.errors import forbidden, not_found

log = logging.getLogger(__name__)

MAX_SECONDS = 20.0  # a test call is short: the agent needs about 5 s
MAX_MESSAGE = 64 * 1024  # two offers of one media line each
AUDIO_TIME_BASE = Fraction(1, 48000)
SLOT = "self"


@dataclass
class EchoSession:
    """One site's test call: what arrives is sent back; counted both ways."""

    code: str
    peers: PeerSession
    source: VideoSource
    audio_packets: int = 0

    def on_audio(self, packet: RtpPacket) -> None:
        """An audio packet from the site: counted, and sent straight back."""
        self.audio_packets += 1
        if self.peers.audio_out is not None:
            self.peers.audio_out.push(packet.payload, packet.timestamp, AUDIO_TIME_BASE)

    async def answer(self, kind: object, sdp: object) -> dict[str, Any]:
        """Answer the site's audio or video offer, reflecting its media."""
        if kind == "audio":
            answer = await self.peers.answer_audio(sdp, self.on_audio)
        elif kind == "video":
            answer, slots = await self.peers.answer_video(sdp, self.source, [SLOT])
            slots[0].show(self.source)  # the site's own camera, back to it
        else:
            raise OfferError('pc must be "audio" or "video"')
        return {"type": "answer", "pc": kind, "sdp": answer}

    def result(self) -> dict[str, Any]:
        """What the bridge received from the site."""
        return {"type": "test_call.result", "audio_packets": self.audio_packets,
                "video_frames": self.source.frames}


class EchoCalls:
    """The test calls running in this process, one per endpoint."""

    def __init__(self, ice: IceSettings) -> None:
        self.ice = ice
        self.running: dict[str, EchoSession] = {}

    def open(self, code: str) -> EchoSession:
        """Start `code`'s test call."""
        session = EchoSession(code, PeerSession(code, self.ice, lambda _p: None),
                              VideoSource(code))
        self.running[code] = session
        return session

    async def close(self, session: EchoSession) -> None:
        """End a test call and free its peer connections."""
        if self.running.get(session.code) is session:
            del self.running[session.code]
        await session.peers.close()

    async def stop(self) -> None:
        """Close every running test call (the service is stopping)."""
        for session in list(self.running.values()):
            await self.close(session)


ECHO_CALLS = web.AppKey("echo_calls", EchoCalls)


async def echo_call_ws(request: web.Request) -> web.StreamResponse:
    """A short echo call for the endpoint's own agent or operator."""
    principal = require_principal(request)
    code = request.match_info["code"]
    if principal.endpoint_code != code:
        # Another endpoint's test call is not this caller's business (staff included:
        # a test call proves the endpoint's own network and devices).
        if principal.endpoint_code is None:
            raise forbidden("only the endpoint itself (its agent or operator) makes a test call")
        raise forbidden(f"this token belongs to {principal.endpoint_code}, not to {code}")
    async with request.app[DATABASE].read() as session:
        endpoint = await session.scalar(select(Endpoint.id).where(Endpoint.code == code))
    if endpoint is None:
        raise not_found(f"no endpoint {code}")
    calls = request.app[ECHO_CALLS]
    previous = calls.running.get(code)
    if previous is not None:
        await calls.close(previous)
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    echo = calls.open(code)
    try:
        await ws.send_json({"type": "joined", "test_call": True, "endpoint": code,
                            "slots": [SLOT], "max_seconds": MAX_SECONDS,
                            "ice_servers": request.app[SETTINGS].ice_servers})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_serve(ws, echo), MAX_SECONDS)
        if not ws.closed:
            await ws.send_json(echo.result())
            await ws.send_json({"type": "closed", "reason": "test_call_over"})
    finally:
        await calls.close(echo)
        await ws.close()
    log.info("test call of %s: received %s audio packets, %s video frames", code,
             echo.audio_packets, echo.source.frames)
    return ws


async def _serve(ws: web.WebSocketResponse, echo: EchoSession) -> None:
    """Answer offers until the site leaves (or sends something that ends the call)."""
    async for message in ws:
        if message.type is not WSMsgType.TEXT:
            return
        try:
            body = message.json()
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            body = None
        if not isinstance(body, dict):
            await ws.send_json(_error("bad_message", "a message is a JSON object"))
            return
        kind = body.get("type")
        if kind == "offer":
            try:
                await ws.send_json(await echo.answer(body.get("pc"), body.get("sdp")))
            except OfferError as exc:
                await ws.send_json(_error("bad_offer", str(exc)))
                return
        elif kind == "ping":
            await ws.send_json({"type": "pong"})
        elif kind == "leave":
            return
        else:
            await ws.send_json(_error("bad_message", f"unknown message type {kind!r}"))
            return


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"code": code, "message": message}}


def setup_routes(app: web.Application, ice: IceSettings) -> None:
    """Add the test-call route and its registry's lifetime to `app`."""
    calls = EchoCalls(ice)
    app[ECHO_CALLS] = calls
    app.router.add_get("/api/v1/endpoints/{code}/test-call", echo_call_ws)

    async def echo_calls_ctx(_app: web.Application) -> Any:
        yield
        await calls.stop()

    app.cleanup_ctx.append(echo_calls_ctx)
