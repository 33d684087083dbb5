"""The dialer's legs in this process's rooms: a SIP site is seated in its conference's
room with a media leg (`Room.connect_sip`, bridge/sip/sip_leg.py) and removed from it
when its call ends (`Room.disconnect_sip`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bridge.floor_control import FloorError
from bridge.sip.dialer import HangupCallback, SipLeg

if TYPE_CHECKING:
    from bridge.rooms import RoomRegistry

log = logging.getLogger(__name__)


class RoomSipLegs:
    """`SipLegs` over the room registry."""

    def __init__(self, registry: RoomRegistry) -> None:
        self._registry = registry

    async def open(self, conference_id: int, code: str, on_hangup: HangupCallback
                   ) -> SipLeg | None:
        """Seat the SIP site in its room with a new leg; None if there is no room here or
        the room refuses the site (removed by the chair, locked)."""
        room: Any = self._registry.rooms.get(conference_id)
        if room is None:
            return None
        try:
            leg: SipLeg = await room.connect_sip(code, on_hangup=on_hangup)
        except FloorError as exc:
            log.info("SIP site %s not seated in room %s: %s", code, conference_id, exc)
            return None
        return leg

    async def close(self, conference_id: int, code: str, leg: SipLeg, *, left: bool) -> None:
        """Remove the site's leg from its room (the room reports left or dropped)."""
        room: Any = self._registry.rooms.get(conference_id)
        if room is not None:
            await room.disconnect_sip(leg, left=left)
        else:
            close = getattr(leg, "close", None)
            if close is not None:
                await close()
