"""The agent's connection to the controller's event stream (`/api/v1/events`).

It resumes with `?after=<last seq>` after any cut, so no invitation is missed,
reconnecting with a jittered backoff (at once if the stream had been up). A
controller that cannot be reached gives way to the next of the agent's
controller URLs at once; the backoff grows only when none of them answers.
The sequence is the database's, so any controller resumes where another left
off. Each event reaches the listener once, in order; the heartbeats the agent
sends on the stream are answered on it too."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any, Protocol

import aiohttp

from bridge.agent.controller import (
    PROXY_DOWN,
    UNREACHABLE,
    Controller,
    describe,
    jittered,
)
from bridge.agent.settings import AgentConfigError

log = logging.getLogger(__name__)

RESUME_CLOSE_CODE = 1013  # the controller asks the client to come back later


class StreamListener(Protocol):
    """What the agent does with what the event stream brings."""

    async def check_identity(self) -> None:
        """Before the first connection is taken as up: is the token this endpoint's?"""

    async def stream_connected(self, catch_up: bool) -> None:
        """The stream is up; `catch_up`: look for conferences running now."""

    def on_event(self, event: dict[str, Any]) -> None:
        """A new event (each once, in sequence order)."""

    def heartbeat_answered(self) -> None:
        """The controller took a heartbeat sent on the stream."""

    def heartbeat_refused(self, too_soon: bool, detail: str) -> None:
        """The controller refused a heartbeat sent on the stream."""


class EventFollower:
    """Keeps the event stream connected; `follow()` until cancelled."""

    def __init__(self, controller: Controller, listener: StreamListener,
                 retry: tuple[float, float]) -> None:
        self.controller = controller
        self.listener = listener
        self.retry = retry
        self.last_seq: int | None = None
        self.up = False
        self.counts: Counter[str] = Counter()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._identity_checked = False
        self._catch_up_needed = True

    async def send(self, message: dict[str, Any]) -> bool:
        """Send `message` on the stream if it is up; whether it was sent."""
        ws = self._ws
        if ws is None or ws.closed or not self.up:
            return False
        await ws.send_json(message)
        return True

    async def follow(self) -> None:
        """Connect, read, and reconnect after every cut; raises only AgentConfigError."""
        first, most = self.retry
        delay = first
        untried = len(self.controller.servers) - 1  # others to try before backing off
        while True:
            server = self.controller.server
            try:
                problem, unreachable = await self._connection()
            finally:
                was_up, self.up = self.up, False
            self.counts["stream_failures"] += 1
            if was_up:
                delay = first  # it worked until now: reconnect at once
                untried = len(self.controller.servers) - 1
            if unreachable and untried > 0:
                # Another controller may answer: go there now, not after a backoff.
                untried -= 1
                self.controller.fail_over(server)
                log.warning("%s; trying %s", problem, self.controller.server)
                await asyncio.sleep(jittered(first))
                continue
            if unreachable:
                self.controller.fail_over(server)  # the round starts again elsewhere
            untried = len(self.controller.servers) - 1
            wait = jittered(delay)
            log.warning("%s; retrying in %.1f s", problem, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, most)

    async def _connection(self) -> tuple[str, bool]:
        """One connection, until it ends: what ended it, for the log, and whether the
        controller could not be reached (another one may be)."""
        server = self.controller.server
        try:
            await self._stream_once()
            return "the controller closed the event stream", False
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                return ("the controller refused the agent token (HTTP 401): it is wrong, "
                        "expired or revoked; ask the administrator for a new one "
                        f"(vcbridge endpoints token {self.controller.endpoint})"), False
            if exc.status == 403:
                return ("the controller refused this token for the event stream "
                        "(HTTP 403)"), False
            return (f"the controller at {server} answered HTTP {exc.status} to the event "
                    "stream", exc.status in PROXY_DOWN)
        except UNREACHABLE as exc:
            return f"cannot reach the controller at {server}: {describe(exc)}", True
        except AgentConfigError:
            raise
        except Exception as exc:  # an unattended agent must outlive a surprise
            log.exception("unexpected error on the event stream")
            return f"the event stream failed: {exc!r}", False

    async def _stream_once(self) -> None:
        url = self.controller.events_url(self.last_seq)
        async with self.controller.http.ws_connect(url, heartbeat=20) as ws:
            self._ws = ws
            try:
                async for message in ws:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
                    await self._received(message.json())
            finally:
                self._ws = None
            if ws.close_code == RESUME_CLOSE_CODE:
                log.info("the controller asked to resume the event stream; resuming after "
                         "event %s", self.last_seq)

    async def _received(self, body: dict[str, Any]) -> None:
        kind = body.get("type")
        if kind == "stream.ready":
            await self._ready(body)
        elif isinstance(body.get("seq"), int):
            self._event(body)
        elif kind == "heartbeat.ok":
            self.listener.heartbeat_answered()
        elif kind == "error" and body.get("for") == "heartbeat":
            error = body.get("error") or {}
            self.listener.heartbeat_refused(error.get("code") == "rate_limited",
                                            str(error)[:200])
        elif kind == "error":
            log.warning("the event stream reported an error: %s", body.get("error"))

    async def _ready(self, body: dict[str, Any]) -> None:
        if not self._identity_checked:
            await self.listener.check_identity()
            self._identity_checked = True
        if body.get("reset"):
            log.warning("the controller's event history restarted (database restored?): "
                        "continuing from event %s and checking running conferences",
                        body.get("after"))
            self._catch_up_needed = True
        if self.last_seq is None or body.get("reset"):
            self.last_seq = int(body.get("after") or 0)
        self.counts["stream_connects"] += 1
        self.up = True
        log.info("connected to the event stream of %s (after event %s)",
                 self.controller.server, self.last_seq)
        await self.listener.stream_connected(self._catch_up_needed)
        self._catch_up_needed = False

    def _event(self, event: dict[str, Any]) -> None:
        seq = int(event["seq"])
        if self.last_seq is not None and seq <= self.last_seq:
            return  # already seen
        self.last_seq = seq
        self.counts["events"] += 1
        self.listener.on_event(event)
