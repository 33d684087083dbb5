"""What the scheduler asks of a bridge: the seam between the lifecycle and the rooms.

The scheduler never imports the bridge. The lifecycle runner (on the
scheduler leader) opens a conference's room when its setup time begins,
invites endpoints, and closes the room at the end or on a cancellation,
through this interface, after the transaction that decided it committed.
The bridge's room registry (`bridge/rooms.py`) implements it, and only the
composition root (`vcbridge/app.py`) knows both. A later bridge made of
several nodes places each room on a node behind this same interface.

The events stay the record and the fallback: a bridge process that is not
the leader, or one that restarted, opens a room on its first site's
connection and closes it on `conference.ended` or `conference.cancelled`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

# Why a room closes, as its sites are told ("closed" message of docs/signaling.md).
CloseReason = Literal["ended", "cancelled"]


class BridgePort(Protocol):
    """Room control as the lifecycle needs it."""

    async def open_room(self, conference_id: int, chair: str,
                        participants: Sequence[str]) -> None:
        """Make the conference's room ready for its participants (codes, booking order;
        `chair` among them) to join."""

    async def invite(self, conference_id: int, endpoint: str) -> None:
        """Ask an endpoint to join (beyond the `endpoint.invited` event it already gets)."""

    async def close_room(self, conference_id: int, reason: CloseReason) -> None:
        """Disconnect everyone and close the room (idempotent)."""
