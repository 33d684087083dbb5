"""Which bridge node a conference's room goes to (pure; issue 15, bridge nodes).

The scheduler leader places a room when its conference opens, moves the rooms
of a node declared dead, and a node claims a room whose conference is running
but not placed yet (the leader was slow or died). All three ask `choose_node`
over what the database says about the nodes; no I/O here, so the rule is
tested exhaustively without a network (tests/test_placement_rules.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

NodeState = Literal["live", "draining", "dead"]


@dataclass(frozen=True)
class NodeView:
    """A bridge node as placement sees it."""

    id: str
    state: NodeState
    capacity_ports: int
    # Site ports already promised: the participants of the running rooms placed on it.
    reserved_ports: int
    rooms: int = 0

    @property
    def free_ports(self) -> int:
        """Site ports not promised to any room (never negative)."""
        return max(self.capacity_ports - self.reserved_ports, 0)

    @property
    def takes_rooms(self) -> bool:
        """Live and not draining: may be given a new room."""
        return self.state == "live"


def choose_node(nodes: Iterable[NodeView], ports: int,
                exclude: frozenset[str] = frozenset()) -> NodeView | None:
    """The node for a new room of `ports` sites: among the live nodes (not draining,
    not dead, not in `exclude`) with at least `ports` free ports, the one with the
    most free ports; ties go to the node with fewer rooms, then the smaller id (so
    every process that asks gets the same answer). None when no node fits: a full
    node takes no new room."""
    fitting = [n for n in nodes
               if n.takes_rooms and n.id not in exclude and n.free_ports >= max(ports, 1)]
    if not fitting:
        return None
    return min(fitting, key=lambda n: (-n.free_ports, n.rooms, n.id))


def serves(placement_node: str, placement_incarnation: int, node_id: str,
           incarnation: int) -> bool:
    """Whether a node (in its current incarnation) may serve a room with this placement:
    only the very node, and only the start of it the room was placed on. A node that
    was declared dead and came back has a new incarnation, so it is fenced off from the
    rooms placed on its former self."""
    return placement_node == node_id and placement_incarnation == incarnation
