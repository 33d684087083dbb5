"""One stay of the agent in one conference: join the room, wait for the media, stay
until something ends it, and say why (the rejoin loop in `attendance.py` decides
what to do next)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection

from bridge.agent.controller import describe
from bridge.agent.media_sources import MediaSource
from bridge.agent.settings import AgentSettings
from bridge.agent.site_client import Received, Redirected, SiteClient
from bridge.ice_policy import Network

log = logging.getLogger(__name__)

# A joined site whose media is not up by then is rebuilt.
MEDIA_CONNECT_TIMEOUT = 20.0
# The bridge says "closed" before it closes the media: how long to wait for its reason.
CLOSED_REASON_WAIT = 0.5

OUTCOMES = {
    "join_failed": "the join failed",
    "media_timeout": f"the media did not connect within {MEDIA_CONNECT_TIMEOUT:.0f} s",
    "media_failed": "the media connection failed",
    "signaling_lost": "the signaling connection closed",
    "closed": "the bridge closed the room but the conference is still running",
    "redirect": "the room moved to another bridge node",
    "redirect_loop": "the bridge nodes kept redirecting (the room is moving)",
    "moved": "the controller moved the room to another bridge node",
}


@dataclass
class AgentSiteClient(SiteClient):
    """A SiteClient that reports its media state."""

    media_up: asyncio.Event = field(default_factory=asyncio.Event)
    media_failed: asyncio.Event = field(default_factory=asyncio.Event)

    def _new_pc(self) -> RTCPeerConnection:
        pc = super()._new_pc()

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "failed":
                self.media_failed.set()
            elif len(self._pcs) >= 2 and all(p.connectionState == "connected"
                                             for p in self._pcs):
                self.media_up.set()

        return pc


@dataclass
class Attendance:
    """The agent's presence in one conference."""

    conference_id: int
    task: asyncio.Task[None]
    since: float = field(default_factory=time.monotonic)
    joined: bool = False
    leave_reason: str = "the agent is stopping"
    client: SiteClient | None = None
    # Set when the controller is reachable again: a waiting rejoin goes at once.
    retry_now: asyncio.Event = field(default_factory=asyncio.Event)
    # The base URL the media is connected to now (the placed node, or the controller).
    base_url: str = ""
    # Set when the room was placed elsewhere (`moved_to`): leave this node and go there.
    moved: asyncio.Event = field(default_factory=asyncio.Event)
    moved_to: str | None = None
    # The last `redirect` message a node sent (docs/signaling.md).
    redirect: dict[str, Any] | None = None


class ConferenceSessions:
    """Joins a conference once and stays; `run` returns why it ended and whether the
    media was up. Counts joins and failures in `counts`."""

    def __init__(self, settings: AgentSettings, media: MediaSource,
                 configuration: RTCConfiguration, remote_networks: Sequence[Network],
                 on_received: Callable[[int, Received], None]) -> None:
        self.settings = settings
        # Told each `redirect` a node sent (conference, message): where the room is.
        self.on_redirect: Callable[[int, dict[str, Any]], None] = lambda _c, _m: None
        self.media = media
        self.configuration = configuration
        self.remote_networks = remote_networks
        self.on_received = on_received
        self.counts: Counter[str] = Counter()

    async def run(self, attendance: Attendance, base_url: str) -> tuple[str, bool]:
        """Join once through the node at `base_url` and stay until something ends the
        session: (why, media was up). A `redirect` from the node ends it with
        "redirect" and the message in `attendance.redirect`."""
        conference_id = attendance.conference_id
        attendance.base_url, attendance.redirect = base_url, None
        attendance.moved.clear()
        attendance.moved_to = None

        def no_media(exc: Exception) -> None:
            # Present but unseen and unheard beats absent: join receive-only.
            log.error("conference %s: cannot open the media source %s: %s; joining "
                      "without camera and microphone", conference_id, self.media.spec,
                      describe(exc))

        with self.media.borrowed(no_media) as (audio, video):
            client = AgentSiteClient(
                base_url, conference_id, self.settings.token, self.configuration,
                audio=audio, video=video,
                on_received=lambda item: self.on_received(conference_id, item),
                remote_networks=self.remote_networks,
            )
            attendance.client = client
            leave = False
            try:
                return await self._join_and_stay(attendance, client)
            except asyncio.CancelledError:
                leave = True  # the conference ended or the agent stops: say goodbye
                raise
            finally:
                attendance.joined, attendance.client = False, None
                with contextlib.suppress(Exception):
                    await client.close(leave=leave)

    async def _join_and_stay(self, attendance: Attendance, client: AgentSiteClient
                             ) -> tuple[str, bool]:
        conference_id = attendance.conference_id
        try:
            await client.join()
        except asyncio.CancelledError:
            raise
        except Redirected as redirected:
            self.counts["redirects"] += client.redirects
            attendance.redirect = redirected.redirect
            self.on_redirect(conference_id, redirected.redirect)
            log.warning("conference %s: still redirected after %s hops (to %s)",
                        conference_id, client.redirects, redirected.redirect.get("url"))
            return "redirect_loop", False
        except Exception as exc:
            self.counts["join_failures"] += 1
            log.warning("conference %s: could not join: %s", conference_id, describe(exc))
            return "join_failed", False
        self.counts["joins"] += 1
        if client.redirect is not None:
            # Joined through a node's redirect: the room is where the client is now.
            self.counts["redirects"] += client.redirects
            attendance.base_url = client.base_url
            self.on_redirect(conference_id, client.redirect)
            client.redirect = None
        log.info("conference %s: signaling connected as %s, receiving %s",
                 conference_id, client.joined.get("role"),
                 ", ".join(["mix", *client.joined.get("slots", [])]))
        return await self._stay(attendance, client)

    async def _stay(self, attendance: Attendance, client: AgentSiteClient
                    ) -> tuple[str, bool]:
        ended = asyncio.ensure_future(client.ended.wait())
        failed = asyncio.ensure_future(client.media_failed.wait())
        up = asyncio.ensure_future(client.media_up.wait())
        moved = asyncio.ensure_future(attendance.moved.wait())
        deadline = asyncio.get_running_loop().time() + MEDIA_CONNECT_TIMEOUT
        try:
            while not (ended.done() or failed.done()):
                waiting = {ended, failed, moved} | (set() if up.done() else {up})
                timeout = (None if up.done()
                           else max(0.0, deadline - asyncio.get_running_loop().time()))
                done, _ = await asyncio.wait(waiting, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    self.counts["media_failures"] += 1
                    return "media_timeout", False
                if moved in done and not ended.done():
                    if attendance.moved_to != client.base_url:
                        return "moved", up.done()
                    # The join's own redirect already brought it there: stay.
                    attendance.moved.clear()
                    moved = asyncio.ensure_future(attendance.moved.wait())
                if up in done and not attendance.joined:
                    attendance.joined = True
                    log.info("conference %s: joined, media connected through %s",
                             attendance.conference_id, client.base_url)
            if failed.done() and not ended.done():
                # The bridge says "closed" before it closes the media: give the
                # signaling a moment to tell us why the media went.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(ended), CLOSED_REASON_WAIT)
            media_was_up = up.done()
            if client.closed_reason == "redirect" and client.redirect is not None:
                self.counts["redirects"] += 1
                attendance.redirect = client.redirect
                self.on_redirect(attendance.conference_id, client.redirect)
                return "redirect", media_was_up
            if client.closed_reason is not None:
                return client.closed_reason, media_was_up
            if failed.done():
                self.counts["media_failures"] += 1
                return "media_failed", media_was_up
            self.counts["signaling_drops"] += 1
            return "signaling_lost", media_was_up
        finally:
            for waiter in (ended, failed, up, moved):
                waiter.cancel()
