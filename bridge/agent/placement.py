"""Where a conference's room is: the bridge node a site must connect its media to.

The controller says it in three places (docs/signaling.md, docs/events.md): the
conference's API answer and the `endpoint.invited` event carry
`bridge: {node, url, generation}`, and `conference.room_placed` announces each
placement and move. A node reached for a conference placed elsewhere answers with
a `redirect` message of the same form. The generation grows by one at each move,
so an older word never overrides a newer one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Placement:
    """Where a conference's room is: the bridge node's id, the base URL sites use for
    its signaling, and the placement's generation (+1 at each move)."""

    node: str | None
    url: str
    generation: int

    @classmethod
    def from_json(cls, bridge: Any) -> Placement | None:
        """The `bridge` object of a conference answer or an event (None: not placed)."""
        if not isinstance(bridge, dict):
            return None
        url = bridge.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return None
        generation = bridge.get("generation")
        node = bridge.get("node")
        return cls(node if isinstance(node, str) else None, url.rstrip("/"),
                   generation if isinstance(generation, int) else 0)


    def newer_than(self, other: Placement | None) -> bool:
        """Whether this placement replaces `other` (a move, or the first word)."""
        if other is None:
            return True
        return self.url != other.url and self.generation >= other.generation
