"""All rooms of this bridge process, opened by the lifecycle or on demand, closed at the end.

The registry is the scheduler's bridge (`scheduler/bridge_port.BridgePort`,
implemented structurally: the bridge does not import the scheduler; the
composition root passes the registry to the lifecycle). On the scheduler
leader the lifecycle opens a conference's room when its setup time begins
(`open_room`) and closes it at the end or on a cancellation (`close_room`).

The fallback, for a process that is not the leader or that restarted: a room
is created when the first site or moderator connects (the signaling handler
has checked the conference's status in the database), and closed when
`conference.ended` or `conference.cancelled` arrives on the event bus,
whichever process the scheduler leader runs in. A room's audio engine starts
with its first connection, so an opened room nobody joins costs nothing."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge.message_rate import JoinBudgets
from bridge.peer_session import IceSettings
from bridge.room import Room, RoomHooks
from bridge.room_state_store import RoomStateStore
from bridge.sip.dialer import SipDialer
from vcbridge.core.event_types import ROOM_CLOSING, EventType
from vcbridge.core.events import BusEvent, EventBus, Follower
from vcbridge.core.media_counters import MixCounters

log = logging.getLogger(__name__)



class RoomRegistry:
    """The rooms of this process by conference id."""

    def __init__(self, ice: IceSettings, hooks: RoomHooks, *, frame_ms: int = 20,
                 recordings_dir: Path | None = None, joins_per_minute: int = 20,
                 states: RoomStateStore | None = None) -> None:
        self.ice = ice
        # Connections per minute per site or moderator and room (signaling checks it).
        self.joins = JoinBudgets(joins_per_minute)
        self.hooks = hooks
        self.frame_ms = frame_ms
        self.recordings_dir = recordings_dir
        # Where rooms keep their state, so a room opened again restores it (None: not kept).
        self.states = states
        self.rooms: dict[int, Room] = {}
        # The audio mixes of the rooms closed so far, so the metrics' counters only grow.
        self.closed_mixes = MixCounters()
        # SIP room systems are dialled through it (None: no SIP gateway configured).
        self.sip: SipDialer | None = None
        self._follower: Follower | None = None
        self._invitations: Follower | None = None
        # Invitations this process's scheduler passed here directly, whose events are
        # still to come (they are skipped, not dialled again).
        self._handled: Counter[tuple[int, str]] = Counter()

    def room_for(self, conference_id: int, chair: str, sites: Sequence[str]) -> Room:
        """The conference's room for a connection: created on first use, started."""
        room = self._room(conference_id, chair, sites)
        room.start()
        return room

    def _room(self, conference_id: int, chair: str, sites: Sequence[str]) -> Room:
        room = self.rooms.get(conference_id)
        if room is None:
            room = Room(conference_id, chair, sites, self.ice, self.hooks,
                        frame_ms=self.frame_ms)
            room.recordings_dir = self.recordings_dir
            if self.states is not None:
                room.keep_state(self.states)
            self.rooms[conference_id] = room
            log.info("room %s opened", conference_id)
        return room

    async def allowed_sites(self, conference_id: int, participants: Sequence[str]
                            ) -> frozenset[str]:
        """The codes that may join the conference's room: its sites once its state is
        restored (booked and admitted), else the booked participants and those its saved
        state admitted (a room not opened again yet after a restart)."""
        room = self.rooms.get(conference_id)
        if room is not None:
            await room.ready()
            return room.state.sites
        saved = await self.states.load(conference_id) if self.states is not None else None
        return frozenset(participants) | frozenset(saved.sites if saved else ())

    # -- the scheduler's BridgePort ----------------------------------------------------

    async def open_room(self, conference_id: int, chair: str,
                        participants: Sequence[str]) -> None:
        """The conference's setup time began: its room is ready for its sites (with the
        state its room saved before, if it was open already)."""
        await self._room(conference_id, chair, participants).ready()

    async def invite(self, conference_id: int, endpoint: str) -> None:
        """A SIP room system is dialled (in the background: `bridge/sip/dialer.py`).

        Other sites dial in themselves: the `endpoint.invited` event (published with
        the decision) is the invitation their agents act on."""
        if self.sip is not None and conference_id in self.rooms:
            self.rooms[conference_id].start()
            if self._invitations is not None:
                # Its `endpoint.invited` event is on the way: that one is handled here.
                self._handled[(conference_id, endpoint)] += 1
            await self.sip.invite(conference_id, endpoint)

    async def close_room(self, conference_id: int, reason: str) -> None:
        """Disconnect everyone and forget the room."""
        if self.sip is not None:
            await self.sip.close_conference(conference_id)
        room = self._forget(conference_id)
        if room is not None:
            await room.close(reason)
            log.info("room %s closed (%s)", conference_id, reason)

    async def move_away(self, conference_id: int, redirect: dict[str, Any]) -> None:
        """The room now lives on another bridge node (this one was fenced off): send
        every site and console the `redirect` first, then close the room here."""
        room = self._forget(conference_id)
        if room is None:
            return
        sends = [c.send for c in room.connections.values()] + [
            c.send for c in room.controls.values()]
        for send in sends:
            with contextlib.suppress(Exception):
                await send(redirect)
        await room.close("moved")
        log.info("room %s closed here: moved to node %s", conference_id, redirect.get("node"))

    def _forget(self, conference_id: int) -> Room | None:
        room = self.rooms.pop(conference_id, None)
        if room is not None:
            self.closed_mixes = self.closed_mixes.plus(room.audio.mix_counters())
        return room

    def start(self, bus: EventBus, *, follow_invitations: bool = False) -> None:
        """Close rooms when their conference ends or is cancelled (any process's leader);
        with `follow_invitations` and a SIP gateway, dial the SIP sites invited into a
        room this process holds."""
        self._follower = bus.follow(ROOM_CLOSING, self._on_closing, name="rooms")
        if self.sip is not None and follow_invitations:
            # With bridge nodes the scheduler leader may run in another process, so its
            # `invite` never reaches this registry: the invitation event does (the
            # dialer ignores a call already being made or up).
            self._invitations = bus.follow([EventType.ENDPOINT_INVITED], self._on_invited,
                                           name="rooms-sip-invitations")

    async def stop(self) -> None:
        """Stop following the bus and close every room (the sites are told "shutdown")."""
        for follower in (self._follower, self._invitations):
            if follower is not None:
                await follower.stop()
        for conference_id in list(self.rooms):
            await self.close_room(conference_id, "shutdown")

    async def _on_closing(self, event: BusEvent) -> None:
        if event.conference_id in self.rooms:
            await self.close_room(event.conference_id, ROOM_CLOSING[EventType(event.type)])

    async def _on_invited(self, event: BusEvent) -> None:
        if event.conference_id is None or event.endpoint is None or self.sip is None:
            return
        key = (event.conference_id, event.endpoint)
        if self._handled[key] > 0:
            # This process's scheduler invited it directly: dialling twice would make
            # one failed attempt two.
            self._handled[key] -= 1
            return
        if event.conference_id in self.rooms:
            self.rooms[event.conference_id].start()
            await self.sip.invite(event.conference_id, event.endpoint)
