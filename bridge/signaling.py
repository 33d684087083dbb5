"""The signaling WebSocket: `GET /api/v1/conferences/{id}/signal`.

The public protocol of the bridge (the endpoint agent, the browser pages and
other clients use it); `docs/signaling.md` documents every message.

Two modes, by the `role` query parameter: `site` (the default), where an
endpoint joins with its media and its seat, and `control`, where a person
allowed to moderate (a booker, an admin, or the chair endpoint's operator)
follows the room and acts on the chair's behalf without being a site."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from bridge.control_messages import CONTROL_TYPES, parse_control
from bridge.floor_control import FloorError
from bridge.message_rate import ConnectionRate, SignalingLimits
from bridge.node_membership import NODE, REDIRECT_CLOSE_CODE, redirect_message
from bridge.peer_session import OfferError
from bridge.recorder import RecordingError
from bridge.room import ControlConnection, Room, SiteConnection
from bridge.rooms import RoomRegistry
from vcbridge.core.app_keys import DATABASE, SETTINGS
from vcbridge.core.audit import Actor
from vcbridge.core.auth.conference_access import Access, Parties, moderation_access, parties
from vcbridge.core.auth.principal import Principal
from vcbridge.core.db.models import RUNNING_STATUSES, Conference, ConferenceStatus, TokenScope
from vcbridge.core.http.auth_middleware import remote_of, require_principal
from vcbridge.core.http.errors import ApiError, conflict, forbidden, invalid, not_found
from vcbridge.core.http.parsing import path_int
from vcbridge.core.settings import Settings

log = logging.getLogger(__name__)

ROOMS = web.AppKey("rooms", RoomRegistry)
# An SDP offer for the chair's 31 video lines is large; keep a generous bound.
MAX_MESSAGE = 512 * 1024
# Every message of the protocol is a flat object (docs/signaling.md): deeper is garbage.
MAX_NESTING = 4
# Close codes of the errors that end a connection (any other: 1003).
_CLOSE_CODES = {"bad_message": 1007, "rate_limited": 1008}


def signaling_limits(settings: Settings) -> SignalingLimits:
    """The per-connection limits from the settings."""
    return SignalingLimits(message_rate=settings.signaling_message_rate,
                           message_burst=settings.signaling_message_burst,
                           offers_per_minute=settings.signaling_offers_per_minute)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"code": code, "message": message}}


async def signal_ws(request: web.Request) -> web.StreamResponse:
    """Join a conference's room: offers and answers, floor control, room state.

    `?role=control`: a moderator's console instead of a site (see `_control_ws`)."""
    principal = require_principal(request)
    conference_id = path_int(request, "id", "conference")
    mode = request.query.get("role", "site")
    if mode not in ("site", "control"):
        raise invalid("query parameter 'role' must be 'site' or 'control'")
    async with request.app[DATABASE].read() as session:
        conference = await session.get(Conference, conference_id)
        if conference is None:
            raise not_found(f"no conference {conference_id}")
        participants = [p.endpoint.code for p in conference.participants]
        chair, status = conference.chair.code, conference.status
        who = parties(conference)
    if mode == "control":
        moderator = _moderator(request, principal, conference_id, who)
        _check_running(conference_id, status, conference.setup_minutes)
        if (redirect := await _placed_elsewhere(request, conference_id)) is not None:
            return await _redirect(request, redirect)
        _check_joins(request, conference_id, f"user:{moderator.name}")
        return await _control_ws(
            request, request.app[ROOMS].room_for(conference_id, chair, participants), moderator)
    code = principal.endpoint_code
    if code is None:
        raise forbidden("only an endpoint (its operator or agent) joins a room")
    allowed = await request.app[ROOMS].allowed_sites(conference_id, participants)
    if code not in allowed:
        # Not booked (nor admitted by the chair): the conference is not its business.
        raise not_found(f"no conference {conference_id}")
    _check_running(conference_id, status, conference.setup_minutes)
    if (redirect := await _placed_elsewhere(request, conference_id)) is not None:
        return await _redirect(request, redirect)
    _check_joins(request, conference_id, code)
    room = request.app[ROOMS].room_for(conference_id, chair, participants)

    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    try:
        # A person's login (an operator's console, not the agent) is named in the record.
        person = (principal.actor(remote_of(request))
                  if principal.scope is TokenScope.LOGIN else None)
        connection = await room.connect(code, ws.send_json, person)
    except FloorError as exc:
        await ws.send_json(_error(exc.code, str(exc)))
        await ws.close(code=4403, message=b"refused")
        return ws
    left = False
    try:
        await ws.send_json({
            "type": "joined", "conference": conference_id, "endpoint": code,
            "role": "chair" if code == chair else "site", "slots": room.slot_names(code),
            "ice_servers": request.app[SETTINGS].ice_servers,
        })
        await room.broadcast()
        settings = request.app[SETTINGS]
        left = await _serve(ws, room, connection, settings.signaling_offer_timeout_seconds,
                            ConnectionRate(signaling_limits(settings)))
    finally:
        # Shielded: aiohttp cancels the handler when the client goes away, and the room
        # must still release the seat, report the drop and tell the others.
        await asyncio.shield(room.disconnect(connection, left=left))
        await ws.close()
    return ws


async def _placed_elsewhere(request: web.Request, conference_id: int
                            ) -> dict[str, Any] | None:
    """The redirect message when the conference's room is on another bridge node (None:
    it is here, or there are no nodes: one process on SQLite). An unplaced running
    conference is placed first (claimed for this node if it may take it); 503 when no
    node can take it now."""
    membership = request.app.get(NODE)
    if membership is None:
        return None
    placement = await membership.resolve(conference_id)
    if placement is None:
        raise ApiError(503, "no_bridge_node", "no bridge node can take this conference's "
                       "room now (every node is full, draining or down); try again shortly",
                       headers={"Retry-After": "2"})
    return None if membership.serves(placement) else redirect_message(placement)


async def _redirect(request: web.Request, message: dict[str, Any]) -> web.StreamResponse:
    """Tell the client where the room is, before anything else, and close (4307)."""
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    await ws.send_json(message)
    await ws.close(code=REDIRECT_CLOSE_CODE, message=b"redirect")
    return ws


def _check_running(conference_id: int, status: ConferenceStatus, setup_minutes: int) -> None:
    """409 unless the conference's room is open (open or live)."""
    if status not in RUNNING_STATUSES:
        raise conflict(f"conference {conference_id} is {status.value}; the room opens "
                       f"{setup_minutes} minutes before the start")


def _check_joins(request: web.Request, conference_id: int, who: str) -> None:
    """429 when `who` connected to this room too often (`signaling_joins_per_minute`)."""
    registry = request.app[ROOMS]
    if not registry.joins.join((conference_id, who), asyncio.get_running_loop().time()):
        wait = max(1, round(60 / registry.joins.per_minute))
        raise ApiError(429, "rate_limited",
                       f"too many connections to this room: at most "
                       f"{registry.joins.per_minute} a minute", headers={"Retry-After": str(wait)})


def _moderator(request: web.Request, principal: Principal, conference_id: int,
               who: Parties) -> Actor:
    """The caller as a moderator of this conference, or 403/404 (`moderation_access`).

    Others who may see the conference get 403; a conference the caller may not
    see is answered as absent, like for sites."""
    access = moderation_access(principal, who)
    if access is Access.GRANTED:
        return principal.actor(remote_of(request))
    if access is Access.FORBIDDEN:
        raise forbidden("only a person logged in as a booker, an admin or the chair "
                        "endpoint's operator may control the room")
    raise not_found(f"no conference {conference_id}")


async def _control_ws(request: web.Request, room: Room, moderator: Actor
                      ) -> web.StreamResponse:
    """A moderator's console: the room states, the chair's actions, no seat."""
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    connection = await room.connect_control(moderator, ws.send_json)
    log.info("room %s: %s (%s) controls from %s", room.conference_id, moderator.name,
             moderator.role, moderator.remote or "?")
    try:
        await ws.send_json({
            "type": "joined", "conference": room.conference_id, "endpoint": None,
            "role": "control", "user": moderator.name, "slots": room.control_slot_names(),
            "ice_servers": request.app[SETTINGS].ice_servers,
        })
        await room.broadcast()  # to this console, and everyone learns who moderates
        # Media is optional here (the grid's video), so there is no offer deadline.
        await _serve(ws, room, connection, None,
                     ConnectionRate(signaling_limits(request.app[SETTINGS])))
    finally:
        await asyncio.shield(room.disconnect_control(connection))
        await ws.close()
    return ws


async def _serve(ws: web.WebSocketResponse, room: Room,
                 connection: SiteConnection | ControlConnection,
                 offer_timeout: float | None, rate: ConnectionRate) -> bool:
    """Handle the client's messages; returns True when the site said goodbye.

    `offer_timeout`: seconds a site has to offer its media (None: no deadline).
    `rate`: this connection's limits; past one the client gets `rate_limited` and the
    socket is closed (the caller then releases the seat as on any disconnect)."""
    loop = asyncio.get_running_loop()
    joined_at = loop.time()
    offered_media = False
    while not connection.closed.is_set():
        timeout = None if offer_timeout is None or offered_media else max(offer_timeout - (
            asyncio.get_running_loop().time() - joined_at), 0.1)
        try:
            message = await asyncio.wait_for(_next(ws, connection, rate), timeout)
        except TimeoutError:
            await ws.send_json(_error("timeout", "no media offer received in time"))
            await ws.close(code=1008, message=b"no offer")
            return False
        if message is None:
            return False
        kind = None if isinstance(message, ApiError) else message.get("type")
        if kind == "offer" and rate.offer(loop.time()) is not None:
            message = ApiError(429, "rate_limited", "too many offers on this connection: at "
                               f"most {rate.limits.offers_per_minute} a minute")
        if isinstance(message, ApiError):
            await ws.send_json(_error(message.code, message.message))
            await ws.close(code=_CLOSE_CODES.get(message.code, 1003),
                           message=message.code.encode())
            return False
        try:
            if kind == "offer":
                answer = await room.offer(connection, message.get("pc"), message.get("sdp"))
                offered_media = True
                await ws.send_json(answer)
            elif kind in CONTROL_TYPES:
                await room.control(connection.actor, parse_control(message))
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


async def _next(ws: web.WebSocketResponse, connection: SiteConnection | ControlConnection,
                rate: ConnectionRate) -> dict[str, Any] | ApiError | None:
    """The next JSON object from the client, an ApiError for garbage or a client over its
    message rate, None when closed."""
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
    # Counted before anything else is done with it: parsing is work too.
    if rate.message(asyncio.get_running_loop().time()) is not None:
        limits = rate.limits
        return ApiError(429, "rate_limited", "too many messages on this connection: at most "
                        f"{limits.message_burst} at once and {limits.message_rate:g} a second")
    if message.type is WSMsgType.ERROR:
        # Too large or broken frames end here (aiohttp closes with 1009 for size).
        return ApiError(400, "bad_message", f"unreadable message: {ws.exception()}")
    if message.type is not WSMsgType.TEXT:
        return ApiError(400, "bad_message", "send JSON text messages")
    return _decode(message.data)


def _decode(text: str) -> dict[str, Any] | ApiError:
    """A protocol message from a text frame, or ApiError("bad_message")."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        return ApiError(400, "bad_message", f"malformed JSON: {exc}")
    except (ValueError, RecursionError):
        # Nested deeper than the parser's recursion limit, or a number too long to read.
        return ApiError(400, "bad_message", "malformed JSON: nested too deep or too long")
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return ApiError(400, "bad_message", 'a message is a JSON object with a "type"')
    if _nested_deeper(body, MAX_NESTING):
        return ApiError(400, "bad_message", f"a message is nested at most {MAX_NESTING} deep")
    return body


def _nested_deeper(value: object, limit: int) -> bool:
    """Whether `value` holds containers more than `limit` levels deep (iteratively: the
    value may be as deep as the parser allowed)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (item.values() if isinstance(item, dict)
                    else item if isinstance(item, list) else None)
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return False


def setup_routes(app: web.Application, registry: RoomRegistry) -> None:
    """Register the signaling route."""
    app[ROOMS] = registry
    app.router.add_get("/api/v1/conferences/{id}/signal", signal_ws)
