"""The agent's HTTP client to the controller, with the endpoint's agent token: who am
I, which conferences run, is this one still running, a heartbeat by POST, and the
event stream's WebSocket."""

from __future__ import annotations

import logging
import random
from typing import Any

import aiohttp

from bridge.agent.settings import AgentConfigError, AgentSettings
from vcbridge.core.db.models import RUNNING_STATUSES

log = logging.getLogger(__name__)

EVENTS_PATH = "/api/v1/events"
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
# The errors that mean "the controller cannot be reached now": retried, not fatal.
UNREACHABLE = (aiohttp.ClientError, OSError, TimeoutError)


def jittered(delay: float) -> float:
    """A wait between half and all of `delay`, so many agents do not retry in step."""
    return delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security


def describe(exc: BaseException) -> str:
    """An exception for the log: its message, or its name when it has none."""
    return str(exc) or type(exc).__name__


class Controller:
    """The controller as the agent sees it; `open()` before use, `close()` after."""

    def __init__(self, settings: AgentSettings) -> None:
        self.server = settings.server
        self.endpoint = settings.endpoint
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

    def events_url(self, after: int | None) -> str:
        """The event stream's address, resuming after event `after`."""
        url = self.server + EVENTS_PATH
        return url if after is None else f"{url}?after={after}"

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        """GET `path`: the status and the JSON object answered ({} if none)."""
        async with self.http.get(self.server + path) as response:
            try:
                body = await response.json()
            except (aiohttp.ContentTypeError, ValueError):
                body = {}
            return response.status, body if isinstance(body, dict) else {}

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

    async def still_running(self, conference_id: int) -> bool | None:
        """Whether the conference is open or live (None: the controller did not say)."""
        try:
            status, body = await self.get(f"/api/v1/conferences/{conference_id}")
        except UNREACHABLE as exc:
            # The join failure or the rejoin line already tells the staff.
            log.debug("conference %s: cannot check its status: %s", conference_id, exc)
            return None
        if status == 404:
            return False
        if status != 200:
            return None
        return body.get("status") in RUNNING_STATUSES

    async def post_heartbeat(self, body: dict[str, Any]) -> tuple[int, str]:
        """POST a heartbeat: the status, and the answer's text when refused."""
        url = f"{self.server}/api/v1/endpoints/{self.endpoint}/heartbeat"
        async with self.http.post(url, json=body) as response:
            if response.status >= 400:
                return response.status, (await response.text())[:200]
            return response.status, ""
