"""The agent's HTTP client to the controller, with the endpoint's agent token: who am
I, which conferences run, is this one still running (and on which bridge node), a
heartbeat by POST, and the event stream's WebSocket.

Several controller processes may serve the same database (docs/deployment.md): the
agent is given all their URLs and uses one at a time, sticking to the one that
works. A request that cannot reach it (connection refused, timeout, or a proxy's
502/503/504) is tried once on each of the others, and the first that answers
becomes the current one; the event stream moves the same way (`fail_over`)."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp

from bridge.agent.placement import Placement
from bridge.agent.settings import AgentConfigError, AgentSettings
from vcbridge.core.db.models import RUNNING_STATUSES

log = logging.getLogger(__name__)

T = TypeVar("T")

EVENTS_PATH = "/api/v1/events"
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
# The errors that mean "the controller cannot be reached now": retried, not fatal.
UNREACHABLE = (aiohttp.ClientError, OSError, TimeoutError)
# A reverse proxy's answers when the process behind it is down: try another controller.
PROXY_DOWN = frozenset({502, 503, 504})


class ControllerDown(aiohttp.ClientError):
    """A controller answered through its proxy that it is down (HTTP 502/503/504)."""


def jittered(delay: float) -> float:
    """A wait between half and all of `delay`, so many agents do not retry in step."""
    return delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security


def describe(exc: BaseException) -> str:
    """An exception for the log: its message, or its name when it has none."""
    return str(exc) or type(exc).__name__


class Controller:
    """The controller as the agent sees it; `open()` before use, `close()` after."""

    def __init__(self, settings: AgentSettings) -> None:
        self.servers = tuple(settings.servers)
        self._current = 0
        self.endpoint = settings.endpoint
        self.failovers = 0  # how many times the agent moved to another controller
        self._token = settings.token
        self._http: aiohttp.ClientSession | None = None

    def open(self) -> None:
        """Start the HTTP session (on the running event loop)."""
        self._http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self._token}"}, timeout=HTTP_TIMEOUT)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._http is not None:
            await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        """The open session (its requests carry the token)."""
        assert self._http is not None, "Controller.open() first"
        return self._http

    @property
    def server(self) -> str:
        """The controller URL in use now."""
        return self.servers[self._current]

    def fail_over(self, failed: str) -> None:
        """`failed` could not be reached: use the next controller (if `failed` is still
        the current one: a concurrent request may have moved on already)."""
        if len(self.servers) < 2 or failed != self.server:
            return
        self._current = (self._current + 1) % len(self.servers)
        self.failovers += 1
        log.warning("cannot reach the controller at %s; using %s", failed, self.server)

    async def _on_any(self, call: Callable[[str], Awaitable[T]]) -> T:
        """`call(base_url)` on the current controller, then on each other one while it
        cannot be reached; the last error if none can."""
        error: BaseException | None = None
        for _ in self.servers:
            server = self.server
            try:
                return await call(server)
            except UNREACHABLE as exc:
                error = exc
                self.fail_over(server)
        assert error is not None
        raise error

    def events_url(self, after: int | None) -> str:
        """The event stream's address, resuming after event `after`."""
        url = self.server + EVENTS_PATH
        return url if after is None else f"{url}?after={after}"

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        """GET `path`: the status and the JSON object answered ({} if none), from the
        first controller that can be reached."""

        async def get(server: str) -> tuple[int, dict[str, Any]]:
            async with self.http.get(server + path) as response:
                if response.status in PROXY_DOWN:
                    raise ControllerDown(f"{server} answered HTTP {response.status}")
                try:
                    body = await response.json()
                except (aiohttp.ContentTypeError, ValueError):
                    body = {}
                return response.status, body if isinstance(body, dict) else {}

        return await self._on_any(get)

    async def check_identity(self) -> None:
        """Refuse a token that belongs to another endpoint (or to no endpoint)."""
        status, body = await self.get("/api/v1/auth/me")
        if status != 200:
            raise aiohttp.ClientError(f"GET /api/v1/auth/me answered HTTP {status}")
        bound = body.get("endpoint")
        if bound != self.endpoint:
            raise AgentConfigError(
                f"the token belongs to {bound or 'no endpoint'}, not to {self.endpoint}: "
                f"issue an agent token with `vcbridge endpoints token {self.endpoint}`")
        if body.get("scope") != "agent":
            log.warning("this is a %s token, not an agent token: it may expire; use "
                        "`vcbridge endpoints token %s`", body.get("scope"), self.endpoint)

    async def running_conferences(self) -> list[dict[str, Any]]:
        """The endpoint's conferences that are open or live right now."""
        status, body = await self.get("/api/v1/conferences?status=open&status=live")
        if status != 200:
            raise aiohttp.ClientError(f"listing running conferences answered HTTP {status}")
        return [c for c in body.get("conferences", [])
                if self.endpoint in c.get("participants", ())]

    async def conference_now(self, conference_id: int
                             ) -> tuple[bool | None, Placement | None]:
        """Whether the conference is open or live (None: the controller did not say),
        and where its room is placed (None: not placed, or not said)."""
        try:
            status, body = await self.get(f"/api/v1/conferences/{conference_id}")
        except UNREACHABLE as exc:
            # The join failure or the rejoin line already tells the staff.
            log.debug("conference %s: cannot check its status: %s", conference_id, exc)
            return None, None
        if status == 404:
            return False, None
        if status != 200:
            return None, None
        return body.get("status") in RUNNING_STATUSES, Placement.from_json(body.get("bridge"))

    async def still_running(self, conference_id: int) -> bool | None:
        """Whether the conference is open or live (None: the controller did not say)."""
        return (await self.conference_now(conference_id))[0]

    async def post_heartbeat(self, body: dict[str, Any]) -> tuple[int, str]:
        """POST a heartbeat to the first controller that can be reached: the status,
        and the answer's text when refused."""

        async def post(server: str) -> tuple[int, str]:
            url = f"{server}/api/v1/endpoints/{self.endpoint}/heartbeat"
            async with self.http.post(url, json=body) as response:
                if response.status in PROXY_DOWN:
                    raise ControllerDown(f"{server} answered HTTP {response.status}")
                if response.status >= 400:
                    return response.status, (await response.text())[:200]
                return response.status, ""

        return await self._on_any(post)
