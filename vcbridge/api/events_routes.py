"""The live event stream: `GET /api/v1/events` (WebSocket).

The client may pass `?after=N`, the last sequence number it saw; it then
receives every later event in order, without gaps or duplicates, followed by
live events. Staff see every event; an operator or an endpoint agent only the
events that concern its endpoint. An endpoint-bound connection also marks its
endpoint as on line (presence) while it stays open."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy.ext.asyncio import AsyncSession

from vcbridge import presence
from vcbridge.app_keys import CLOCK, DATABASE, EVENT_BUS, SETTINGS, ZONE
from vcbridge.auth.principal import Permission, Principal
from vcbridge.events import BusEvent
from vcbridge.http.auth_middleware import require_principal
from vcbridge.http.errors import invalid
from vcbridge.http.parsing import query_int

log = logging.getLogger(__name__)

MAX_CLIENT_MESSAGE = 4096


def visible(principal: Principal, event: BusEvent) -> bool:
    """Whether `principal` may see `event`."""
    if principal.can(Permission.READ_ALL_CONFERENCES):
        return True
    return principal.endpoint_code is not None and principal.endpoint_code in event.audience


async def events_ws(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/events?after=N: the event stream over a WebSocket."""
    principal = require_principal(request)
    if principal.endpoint_id is None and not principal.can(Permission.READ_ALL_CONFERENCES):
        raise invalid("this account sees no events")
    bus = request.app[EVENT_BUS]
    # The sequence is a BIGINT: larger than the 32-bit ids elsewhere.
    after = query_int(request, "after", -1, 0, 2**62) if "after" in request.query else None
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_CLIENT_MESSAGE)
    await ws.prepare(request)
    zone = request.app[ZONE]
    keeper = None
    if principal.endpoint_id is not None:
        # Counted as on line before the first message, so "ready" means ready.
        await _presence(request, principal.endpoint_id, presence.connected)
        keeper = asyncio.create_task(_keep_presence(request, principal.endpoint_id, ws))
    try:
        async with bus.subscribe() as subscription:
            newest = await bus.newest_seq()
            # A client ahead of the stream (the database was restored) starts over at
            # the newest event and is told so, instead of silently missing events.
            reset = after is not None and after > newest
            last = newest if after is None or reset else after
            await ws.send_json({"type": "stream.ready", "after": last, "reset": reset})
            # Backlog from the table, then live events past what was sent.
            while backlog := await bus.read_after(last):
                for event in backlog:
                    if visible(principal, event):
                        await ws.send_json(event.to_json(zone))
                    last = event.seq
            reader = asyncio.create_task(_read_client(ws))
            while True:
                getter = asyncio.create_task(subscription.queue.get())
                done, _ = await asyncio.wait({getter, reader},
                                             return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    getter.cancel()
                    break
                live = getter.result()
                if live is None:  # the bus stopped or we fell behind: client resumes
                    await ws.close(code=1013, message=b"resume with ?after=last seq")
                    break
                if live.seq > last:
                    last = live.seq
                    if visible(principal, live):
                        await ws.send_json(live.to_json(zone))
            reader.cancel()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        if keeper is not None and principal.endpoint_id is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await _presence(request, principal.endpoint_id, presence.disconnected)
        await ws.close()
    return ws


async def _read_client(ws: web.WebSocketResponse) -> None:
    """Answer pings; anything else is refused with a clear error and closes the socket."""
    async for message in ws:
        if message.type is WSMsgType.TEXT:
            try:
                body: Any = json.loads(message.data)
            except json.JSONDecodeError:
                body = None
            if isinstance(body, dict) and body.get("type") == "ping":
                await ws.send_json({"type": "pong"})
                continue
            await ws.send_json({"type": "error", "error": {
                "code": "bad_message",
                "message": 'the event stream only accepts {"type": "ping"}',
            }})
        await ws.close(code=1003, message=b"unsupported message")
        return


async def _presence(
    request: web.Request,
    endpoint_id: int,
    change: Callable[[AsyncSession, int, datetime], Awaitable[None]],
) -> None:
    async with request.app[DATABASE].write() as session:
        await change(session, endpoint_id, request.app[CLOCK].now())


async def _keep_presence(request: web.Request, endpoint_id: int, ws: web.WebSocketResponse
                         ) -> None:
    interval = request.app[SETTINGS].presence_stale_seconds / 3
    while not ws.closed:
        await asyncio.sleep(interval)
        await _presence(request, endpoint_id, presence.seen)


def setup_routes(app: web.Application) -> None:
    """Register the event stream route."""
    app.router.add_get("/api/v1/events", events_ws)
