"""What the scheduler asks of a bridge. The composition root wires an implementation.

The scheduler never imports the bridge: it opens and closes rooms and invites
endpoints through this interface, which a bridge node may implement in this
process or remotely."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class BridgePort(Protocol):
    """Room control as the lifecycle needs it."""

    async def open_room(self, conference_id: int, participants: Sequence[str]) -> None:
        """Make the conference's room ready for its participants to join."""

    async def invite(self, conference_id: int, endpoint: str) -> None:
        """Ask an endpoint to join (beyond the `endpoint.invited` event it already gets)."""

    async def close_room(self, conference_id: int) -> None:
        """Disconnect everyone and close the room."""


class EventOnlyBridge:
    """A bridge with no media of its own: invitations travel only as events.

    Endpoint agents and consoles act on `endpoint.invited` from the event
    stream, so this is a complete implementation for the lifecycle itself."""

    async def open_room(self, conference_id: int, participants: Sequence[str]) -> None:
        return None

    async def invite(self, conference_id: int, endpoint: str) -> None:
        return None

    async def close_room(self, conference_id: int) -> None:
        return None
