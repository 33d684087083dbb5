"""The agent's presence in its conferences: join when told, stay, rejoin after a
drop while the conference still runs, leave when it ends.

If the media or the signaling channel drops while the conference still runs,
the whole site client is rebuilt at once (aiortc has no ICE restart), with a
short jittered backoff; a drop after the media was up starts the backoff again.

The media goes to the bridge node the conference is placed on (`placement.py`):
what the events said last, read again from the controller after every drop
(the node may have died and the room moved), the controller itself when the
room is not placed. A node's `redirect` is followed at once; a
`conference.room_placed` that moves the room ends the session on the old node
and wakes a waiting rejoin."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Any

from bridge.agent.conference_session import OUTCOMES, Attendance, ConferenceSessions
from bridge.agent.controller import Controller, jittered
from bridge.agent.placement import Placement

log = logging.getLogger(__name__)

# Redirects followed in a row without a join before waiting as after a failure (two
# nodes that each point at the other must not make the agent spin).
MAX_REDIRECTS = 3


class Attendances:
    """The conferences the agent attends, at most one presence each."""

    def __init__(self, sessions: ConferenceSessions, controller: Controller,
                 retry: tuple[float, float]) -> None:
        self.sessions = sessions
        self.controller = controller
        self.retry = retry
        self.attending: dict[int, Attendance] = {}
        # Where each conference's room is, as last heard (events, API answers, redirects).
        self.placements: dict[int, Placement] = {}
        self.counts: Counter[str] = Counter()
        sessions.on_redirect = self._redirected

    def _redirected(self, conference_id: int, redirect: dict[str, Any]) -> None:
        """A node said where the room is: what the database says now, read by the node,
        so it replaces whatever was known."""
        placement = Placement.from_json(redirect)
        if placement is not None:
            self.placements[conference_id] = placement

    def media_url(self, conference_id: int) -> str:
        """The base URL of the node holding the conference's room (else the controller)."""
        placement = self.placements.get(conference_id)
        return placement.url if placement is not None else self.controller.server

    def placed(self, conference_id: int, placement: Placement | None, *,
               authoritative: bool = False) -> None:
        """The room of `conference_id` is at `placement`: remember it if it is newer than
        what was known (`authoritative`: the controller's own answer, taken as it is,
        None meaning not placed); a session connected elsewhere leaves for it."""
        known = self.placements.get(conference_id)
        if placement is None:
            if authoritative:
                self.placements.pop(conference_id, None)
            return
        if not (authoritative or placement.newer_than(known)):
            return
        self.placements[conference_id] = placement
        attendance = self.attending.get(conference_id)
        if attendance is None or placement == known:
            return
        client = attendance.client
        if client is not None and client.base_url != placement.url:
            log.info("conference %s: the room is now on node %s (%s); moving there",
                     conference_id, placement.node, placement.url)
            attendance.moved_to = placement.url
            attendance.moved.set()
        attendance.retry_now.set()

    def joined(self) -> list[int]:
        """The conferences the agent is in with its media up."""
        return [c for c, a in self.attending.items() if a.joined]

    def attend(self, conference_id: int, why: str) -> None:
        """Join `conference_id` and stay until it ends (nothing if already in it)."""
        if conference_id in self.attending:
            log.debug("conference %s: already in it (%s)", conference_id, why)
            return
        log.info("conference %s: joining, %s", conference_id, why)
        task = asyncio.create_task(self._attend(conference_id),
                                   name=f"agent-conference-{conference_id}")
        self.attending[conference_id] = Attendance(conference_id, task)

        def done(finished: asyncio.Task[None]) -> None:
            current = self.attending.get(conference_id)
            if current is not None and current.task is finished:
                del self.attending[conference_id]
            if not finished.cancelled() and finished.exception() is not None:
                log.error("conference %s: the agent stopped attending after an error",
                          conference_id, exc_info=finished.exception())

        task.add_done_callback(done)

    def leave(self, conference_id: int, reason: str) -> None:
        """Leave `conference_id`: it `reason` ("ended", "cancelled")."""
        attendance = self.attending.get(conference_id)
        if attendance is None:
            log.info("conference %s: %s", conference_id, reason)
            return
        attendance.leave_reason = f"the conference {reason}"
        attendance.task.cancel()

    def retry_now(self) -> None:
        """The controller is reachable again: waiting rejoins go at once."""
        for attendance in self.attending.values():
            attendance.retry_now.set()

    async def stop(self) -> None:
        """Leave every conference (the agent is stopping)."""
        tasks = [a.task for a in self.attending.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def describe(self) -> str:
        """The conferences for the summary line."""
        now = time.monotonic()
        return ", ".join(
            f"{a.conference_id} ({'joined' if a.joined else 'connecting'}, "
            f"{int(now - a.since)} s)" for a in self.attending.values()) or "none"

    async def _attend(self, conference_id: int) -> None:
        """Stay in the conference until it ends, rebuilding the site client after drops."""
        try:
            await self._rejoin_loop(self.attending[conference_id])
        except asyncio.CancelledError:
            attendance = self.attending.get(conference_id)
            reason = attendance.leave_reason if attendance else "the agent is stopping"
            log.info("conference %s: left (%s)", conference_id, reason)
            self.counts["left"] += 1
            raise

    async def _rejoin_loop(self, attendance: Attendance) -> None:
        conference_id = attendance.conference_id
        first, most = self.retry
        delay = first
        attempt = 0
        redirects = 0
        while True:
            attempt += 1
            if attempt > 1:
                self.counts["rejoins"] += 1
            elif conference_id not in self.placements:
                # Told to join before hearing where the room is (the conference went
                # live in the same instant): ask, rather than be redirected.
                running, placement = await self.controller.conference_now(conference_id)
                if running:
                    self.placed(conference_id, placement, authoritative=True)
            outcome, media_was_up = await self.sessions.run(
                attendance, self.media_url(conference_id))
            if outcome == "redirect":
                # The room moved while the site was in it (its node was fenced).
                redirects = 0 if media_was_up else redirects + 1
                if redirects <= MAX_REDIRECTS:
                    log.info("conference %s: following the redirect to %s", conference_id,
                             self.media_url(conference_id))
                    continue  # at once: the room is up there
            else:
                redirects = 0
            if outcome == "moved":
                continue  # `placed` already knows where: go now
            if outcome in ("removed", "replaced"):
                log.warning("conference %s: %s; not rejoining (a new invitation will bring "
                            "the agent back)", conference_id,
                            "the chair removed this site" if outcome == "removed" else
                            "this endpoint connected again from another device")
                return
            running, placement = await self.controller.conference_now(conference_id)
            if running is False:
                log.info("conference %s: left (the conference is over)", conference_id)
                self.counts["left"] += 1
                return
            if running:
                # The controller's word on where the room is now (it may have moved).
                self.placed(conference_id, placement, authoritative=True)
                if self.media_url(conference_id) != attendance.base_url:
                    log.warning("conference %s: %s; the room is now at %s: rejoining there",
                                conference_id, OUTCOMES.get(outcome, outcome),
                                self.media_url(conference_id))
                    continue
            if media_was_up:
                delay = first
            wait = jittered(delay)
            log.warning("conference %s: %s; rejoining in %.1f s", conference_id,
                        OUTCOMES.get(outcome, outcome), wait)
            attendance.retry_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(attendance.retry_now.wait(), wait)
            delay = min(delay * 2, most)
