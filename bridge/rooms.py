"""All rooms of this bridge process, opened on demand and closed by the event bus.

A room exists while its conference is open or live. It is created when the
first site connects (the signaling handler has checked the conference's
status in the database) and closed when `conference.ended` or
`conference.cancelled` arrives on the event bus, whichever process the
scheduler leader runs in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from bridge.message_rate import JoinBudgets
from bridge.peer_session import IceSettings
from bridge.room import Room, RoomHooks
from vcbridge.core.events import EventBus

log = logging.getLogger(__name__)

_CLOSING = {"conference.ended": "ended", "conference.cancelled": "cancelled"}


class RoomRegistry:
    """The rooms of this process by conference id."""

    def __init__(self, ice: IceSettings, hooks: RoomHooks, *, frame_ms: int = 20,
                 recordings_dir: Path | None = None, joins_per_minute: int = 20) -> None:
        self.ice = ice
        # Connections per minute per site or moderator and room (signaling checks it).
        self.joins = JoinBudgets(joins_per_minute)
        self.hooks = hooks
        self.frame_ms = frame_ms
        self.recordings_dir = recordings_dir
        self.rooms: dict[int, Room] = {}
        self._follower: asyncio.Task[None] | None = None

    def room_for(self, conference_id: int, chair: str, sites: Sequence[str]) -> Room:
        """The conference's room, created (and started) on first use."""
        room = self.rooms.get(conference_id)
        if room is None:
            room = Room(conference_id, chair, sites, self.ice, self.hooks,
                        frame_ms=self.frame_ms)
            room.recordings_dir = self.recordings_dir
            room.start()
            self.rooms[conference_id] = room
            log.info("room %s opened", conference_id)
        return room

    async def close_room(self, conference_id: int, reason: str) -> None:
        """Disconnect everyone and forget the room."""
        room = self.rooms.pop(conference_id, None)
        if room is not None:
            await room.close(reason)
            log.info("room %s closed (%s)", conference_id, reason)

    def start(self, bus: EventBus) -> None:
        """Close rooms when their conference ends or is cancelled."""
        self._follower = asyncio.get_running_loop().create_task(self._follow(bus))

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        for conference_id in list(self.rooms):
            await self.close_room(conference_id, "shutdown")

    async def _follow(self, bus: EventBus) -> None:
        while True:
            async with bus.subscribe() as subscription:
                while (event := await subscription.queue.get()) is not None:
                    reason = _CLOSING.get(event.type)
                    if reason and event.conference_id in self.rooms:
                        await self.close_room(event.conference_id, reason)
            # Cut off (we fell behind) or the bus restarted: subscribe again.
            await asyncio.sleep(0.5)
