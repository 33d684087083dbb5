"""The live event stream: `GET /api/v1/events` (WebSocket).

The client may pass `?after=N`, the last sequence number it saw; it then
receives every later event in order, without gaps or duplicates, followed by
live events. Staff see every event; an operator or an endpoint agent only the
events that concern its endpoint. An endpoint-bound connection also marks its
endpoint as on line (presence) while it stays open.

Besides pings, the client may send the messages other parts register in
`app[STREAM_MESSAGES]` (monitoring: an agent's heartbeat, so a thousand agents
report over the connections they hold instead of a request each)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import WSMsgType, web
from sqlalchemy.ext.asyncio import AsyncSession

from vcbridge.core import presence
from vcbridge.core.app_keys import (
    CLOCK,
    DATABASE,
    EVENT_BUS,
    OPEN_STREAMS,
    SETTINGS,
    STREAM_MESSAGES,
    ZONE,
    StreamHandler,
)
from vcbridge.core.auth.principal import Permission, Principal
from vcbridge.core.events import BusEvent, Subscription
from vcbridge.core.http.auth_middleware import require_principal
from vcbridge.core.http.errors import ApiError, invalid
from vcbridge.core.http.parsing import query_int
from vcbridge.core.presence import OpenStreams

log = logging.getLogger(__name__)

# Client messages are small (a ping, an agent's heartbeat); the handlers check their own.
MAX_CLIENT_MESSAGE = 64 * 1024
# A message that names its type first: `{"type": "heartbeat", ...`.
_TYPE_FIRST = re.compile(r'\s*\{\s*"type"\s*:\s*"([a-z][a-z.]{0,63})"')


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
    streams = request.app[OPEN_STREAMS]
    if principal.endpoint_id is not None:
        # Counted as on line before the first message, so "ready" means ready.
        await _presence(request, principal.endpoint_id, presence.connected)
        streams.opened(principal.endpoint_id)
    try:
        async with bus.subscribe(lambda event: visible(principal, event)) as subscription:
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
            # Two tasks, waited on once: the client's messages, and the live events.
            tasks = {asyncio.create_task(_read_client(request, principal, ws)),
                     asyncio.create_task(_send_live(ws, subscription, last, zone))}
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        if principal.endpoint_id is not None:
            streams.closed(principal.endpoint_id)
            await _presence(request, principal.endpoint_id, presence.disconnected)
        await ws.close()
    return ws


async def _send_live(ws: web.WebSocketResponse, subscription: Subscription, last: int,
                     zone: ZoneInfo) -> None:
    """Send the live events past `last` (the subscription only queues visible ones)."""
    while (live := await subscription.queue.get()) is not None:
        if live.seq > last:
            last = live.seq
            await ws.send_json(live.to_json(zone))
    # The bus stopped or this client fell behind: it resumes from its last event.
    await ws.close(code=1013, message=b"resume with ?after=last seq")


async def _read_client(request: web.Request, principal: Principal,
                       ws: web.WebSocketResponse) -> None:
    """Answer pings and the messages other parts accept on the stream (an agent's
    heartbeat); a bad one gets an error; anything else closes the socket."""
    handlers = request.app[STREAM_MESSAGES]
    async for message in ws:
        if message.type is WSMsgType.TEXT:
            # A handler's message that says its type first (as agents and pages send it)
            # goes to the handler as it is: the handler validates the whole message (its
            # type too), so it is not parsed twice (a thousand agents' heartbeats).
            first = _TYPE_FIRST.match(message.data)
            named = first.group(1) if first is not None else ""
            if named in handlers:
                await ws.send_json(await _handle(handlers[named], named, request, principal,
                                                 message.data))
                continue
            try:
                body: Any = json.loads(message.data)
                problem = ""
            except json.JSONDecodeError:
                body, problem = None, "the message is not valid JSON"
            except RecursionError:  # nested past Python's limit (e.g. 60,000 "[")
                body, problem = None, "the message is JSON nested too deeply"
            kind = body.get("type") if isinstance(body, dict) else None
            if kind == "ping":
                await ws.send_json({"type": "pong"})
                continue
            if isinstance(kind, str) and kind in handlers:
                await ws.send_json(await _handle(handlers[kind], kind, request, principal,
                                                 message.data))
                continue
            accepted = ", ".join(f'"{k}"' for k in ["ping", *sorted(handlers)])
            await ws.send_json({"type": "error", "error": {
                "code": "bad_message",
                "message": (f"{problem}; " if problem else "")
                + f"the event stream accepts only messages of type {accepted}",
            }})
        await ws.close(code=1003, message=b"unsupported message")
        return


async def _handle(handler: StreamHandler, kind: str, request: web.Request,
                  principal: Principal, raw: str) -> dict[str, Any]:
    """A handler's answer to a message, or the error it refused it with."""
    try:
        return await handler(request, principal, raw)
    except ApiError as exc:  # refused; the stream stays open
        return {"type": "error", "for": kind, "error": exc.body()}


async def _presence(
    request: web.Request,
    endpoint_id: int,
    change: Callable[[AsyncSession, int, datetime], Awaitable[None]],
) -> None:
    async with request.app[DATABASE].write() as session:
        await change(session, endpoint_id, request.app[CLOCK].now())


async def _keep_presence(app: web.Application) -> None:
    """Refresh the last-seen time of every endpoint with a stream open to this process."""
    interval = app[SETTINGS].presence_stale_seconds / 3
    streams = app[OPEN_STREAMS]
    while True:
        await asyncio.sleep(interval)
        if ids := streams.endpoint_ids:
            try:
                async with app[DATABASE].write() as session:
                    await presence.seen(session, ids, app[CLOCK].now())
            except Exception:  # a database hiccup: the next round tries again
                log.exception("refreshing presence failed")


async def _presence_ctx(app: web.Application) -> AsyncIterator[None]:
    keeper = asyncio.create_task(_keep_presence(app), name="presence-keeper")
    yield
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeper


def setup_routes(app: web.Application) -> None:
    """Register the event stream route."""
    app[OPEN_STREAMS] = OpenStreams()
    app.router.add_get("/api/v1/events", events_ws)
    app.cleanup_ctx.append(_presence_ctx)
