"""The signaling WebSocket: `GET /api/v1/conferences/{id}/signal`.

The public protocol of the bridge (the endpoint agent, the browser pages and
other clients use it); `docs/signaling.md` documents every message."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from bridge.floor_control import FloorError
from bridge.peer_session import OfferError
from bridge.recorder import RecordingError
from bridge.room import Room, SiteConnection
from bridge.rooms import RoomRegistry
from vcbridge.app_keys import DATABASE, SETTINGS
from vcbridge.db.models import Conference, ConferenceStatus
from vcbridge.http.auth_middleware import require_principal
from vcbridge.http.errors import ApiError, conflict, forbidden, not_found
from vcbridge.http.parsing import path_int

log = logging.getLogger(__name__)

ROOMS = web.AppKey("rooms", RoomRegistry)
# An SDP offer for the chair's 31 video lines is large; keep a generous bound.
MAX_MESSAGE = 512 * 1024
_CONTROL = frozenset({
    "floor.request", "floor.cancel", "floor.release", "floor.grant", "floor.refuse",
    "floor.revoke", "mute", "mute_all", "lock", "admit", "remove", "record",
})


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"code": code, "message": message}}


async def signal_ws(request: web.Request) -> web.StreamResponse:
    """Join a conference's room: offers and answers, floor control, room state."""
    principal = require_principal(request)
    conference_id = path_int(request, "id", "conference")
    async with request.app[DATABASE].read() as session:
        conference = await session.get(Conference, conference_id)
        if conference is None:
            raise not_found(f"no conference {conference_id}")
        participants = [p.endpoint.code for p in conference.participants]
        chair, status = conference.chair.code, conference.status
    code = principal.endpoint_code
    if code is None:
        raise forbidden("only an endpoint (its operator or agent) joins a room")
    room = request.app[ROOMS].rooms.get(conference_id)
    allowed = room.state.sites if room else frozenset(participants)
    if code not in allowed:
        # Not booked (nor admitted by the chair): the conference is not its business.
        raise not_found(f"no conference {conference_id}")
    if status not in (ConferenceStatus.OPEN, ConferenceStatus.LIVE):
        raise conflict(f"conference {conference_id} is {status.value}; the room opens "
                       f"{conference.setup_minutes} minutes before the start")
    room = request.app[ROOMS].room_for(conference_id, chair, participants)

    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    try:
        connection = await room.connect(code, ws.send_json)
    except FloorError as exc:
        await ws.send_json(_error(exc.code, str(exc)))
        await ws.close(code=4403, message=b"refused")
        return ws
    await ws.send_json({
        "type": "joined", "conference": conference_id, "endpoint": code,
        "role": "chair" if code == chair else "site", "slots": room.slot_names(code),
        "ice_servers": request.app[SETTINGS].ice_servers,
    })
    await room.broadcast()
    left = False
    try:
        left = await _serve(ws, room, connection,
                            request.app[SETTINGS].signaling_offer_timeout_seconds)
    finally:
        await room.disconnect(connection, left=left)
        await ws.close()
    return ws


async def _serve(ws: web.WebSocketResponse, room: Room, connection: SiteConnection,
                 offer_timeout: float) -> bool:
    """Handle the client's messages; returns True when the site said goodbye."""
    joined_at = asyncio.get_running_loop().time()
    offered_media = False
    while not connection.closed.is_set():
        timeout = None if offered_media else max(offer_timeout - (
            asyncio.get_running_loop().time() - joined_at), 0.1)
        try:
            message = await asyncio.wait_for(_next(ws, connection), timeout)
        except TimeoutError:
            await ws.send_json(_error("timeout", "no media offer received in time"))
            await ws.close(code=1008, message=b"no offer")
            return False
        if message is None:
            return False
        if isinstance(message, ApiError):
            await ws.send_json(_error(message.code, message.message))
            await ws.close(code=1007 if message.code == "bad_message" else 1003,
                           message=message.code.encode())
            return False
        kind = message.get("type")
        try:
            if kind == "offer":
                answer = await room.offer(connection, message.get("pc"), message.get("sdp"))
                offered_media = True
                await ws.send_json(answer)
            elif kind in _CONTROL:
                await room.control(connection.code, message)
            elif kind == "ping":
                await ws.send_json({"type": "pong"})
            elif kind == "leave":
                return True
            else:
                await ws.send_json(_error("bad_message", f"unknown message type {kind!r}"))
                await ws.close(code=1003, message=b"unknown message type")
                return False
        except OfferError as exc:
            # The room is unaffected; the client may not retry on this connection.
            await ws.send_json(_error("bad_offer", str(exc)))
            await ws.close(code=1007, message=b"bad offer")
            return False
        except FloorError as exc:
            await ws.send_json(_error(exc.code, str(exc)))
        except RecordingError as exc:
            await ws.send_json(_error("recording_failed", str(exc)))
        except ValueError as exc:
            await ws.send_json(_error("bad_message", str(exc)))
    return False


async def _next(ws: web.WebSocketResponse, connection: SiteConnection
                ) -> dict[str, Any] | ApiError | None:
    """The next JSON object from the client, an ApiError for garbage, None when closed."""
    receive = asyncio.ensure_future(ws.receive())
    closed = asyncio.ensure_future(connection.closed.wait())
    done, _ = await asyncio.wait({receive, closed}, return_when=asyncio.FIRST_COMPLETED)
    if receive not in done:
        receive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receive
        return None
    closed.cancel()
    message = receive.result()
    if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
        return None
    if message.type is WSMsgType.ERROR:
        # Too large or broken frames end here (aiohttp closes with 1009 for size).
        return ApiError(400, "bad_message", f"unreadable message: {ws.exception()}")
    if message.type is not WSMsgType.TEXT:
        return ApiError(400, "bad_message", "send JSON text messages")
    try:
        body = json.loads(message.data)
    except json.JSONDecodeError as exc:
        return ApiError(400, "bad_message", f"malformed JSON: {exc}")
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return ApiError(400, "bad_message", 'a message is a JSON object with a "type"')
    return body


def setup_routes(app: web.Application, registry: RoomRegistry) -> None:
    """Register the signaling route."""
    app[ROOMS] = registry
    app.router.add_get("/api/v1/conferences/{id}/signal", signal_ws)
