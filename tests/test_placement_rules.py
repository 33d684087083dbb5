"""The placement rule (pure): which bridge node a new room goes to, and who serves it."""

from __future__ import annotations

import itertools

from vcbridge.core.placement_rules import NodeState, NodeView, choose_node, serves


def node(node_id: str, capacity: int = 80, reserved: int = 0, state: NodeState = "live",
         rooms: int = 0) -> NodeView:
    return NodeView(node_id, state, capacity, reserved, rooms)


def test_the_node_with_the_most_free_ports_gets_the_room() -> None:
    nodes = [node("a", 80, 60), node("b", 80, 10), node("c", 40, 0)]
    chosen = choose_node(nodes, 31)
    assert chosen is not None and chosen.id == "b"  # 70 free, against 20 and 40


def test_draining_dead_and_excluded_nodes_get_no_room() -> None:
    nodes = [node("a", state="draining"), node("b", state="dead"), node("c", reserved=79),
             node("d", reserved=50)]
    chosen = choose_node(nodes, 3)
    assert chosen is not None and chosen.id == "d"
    assert choose_node(nodes, 3, exclude=frozenset({"d"})) is None  # c has 1 port left
    assert choose_node([node("a", state="draining"), node("b", state="dead")], 1) is None


def test_a_full_node_gets_no_room_and_none_fits_means_none() -> None:
    assert choose_node([node("a", 31, 0)], 31) is not None
    assert choose_node([node("a", 31, 1)], 31) is None
    # Reserved beyond the capacity (a room grew by admissions) is simply full.
    full = node("a", 10, 25)
    assert full.free_ports == 0 and choose_node([full], 1) is None
    # Even a room of no participant needs a port to be worth placing.
    assert choose_node([node("a", 5, 5)], 0) is None


def test_ties_go_to_fewer_rooms_then_the_smaller_id_whatever_the_order() -> None:
    nodes = [node("b", 80, 20, rooms=2), node("a", 80, 20, rooms=2), node("c", 80, 20, rooms=1)]
    for order in itertools.permutations(nodes):
        chosen = choose_node(order, 4)
        assert chosen is not None and chosen.id == "c"
    same = [node("b"), node("a")]
    for order in itertools.permutations(same):
        chosen = choose_node(order, 4)
        assert chosen is not None and chosen.id == "a"


def test_the_choice_is_the_best_fitting_node_for_every_small_cluster() -> None:
    # Exhaustively over small clusters: the chosen node fits, takes rooms, and no
    # other fitting node has more free ports.
    states: tuple[NodeState, ...] = ("live", "draining", "dead")
    for capacities in itertools.product((0, 10, 31), repeat=3):
        for reserved in itertools.product((0, 5, 31), repeat=3):
            for kinds in itertools.product(states, repeat=3):
                nodes = [node(f"n{i}", c, r, s) for i, (c, r, s)
                         in enumerate(zip(capacities, reserved, kinds, strict=True))]
                chosen = choose_node(nodes, 5)
                fitting = [n for n in nodes if n.state == "live" and n.free_ports >= 5]
                if not fitting:
                    assert chosen is None
                    continue
                assert chosen in fitting
                assert chosen.free_ports == max(n.free_ports for n in fitting)


def test_only_the_placed_node_in_the_placed_incarnation_serves() -> None:
    assert serves("node-a", 3, "node-a", 3)
    assert not serves("node-a", 3, "node-b", 3)
    # node-a was declared dead and came back (incarnation 4): fenced off.
    assert not serves("node-a", 3, "node-a", 4)
