"""A bridge node superseded under its own node id (issue 15's fencing): the process that
finds a later incarnation in its row steps down instead of registering again.

Two processes under one node id happen: an operator starts a second one by mistake, or
the node's successor starts while the old process is frozen and the old one then comes
back. Registering again, each would take the id from the other at every heartbeat and
move the rooms back and forth for as long as both run.

Two apps in this process on the test's PostgreSQL database; PostgreSQL pass only
(tests/conftest.py, POSTGRES_ONLY): on SQLite there are no nodes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bridge.node_membership import NODE
from bridge.signaling import ROOMS
from tests.conftest import Client
from tests.support import loopback_settings
from tests.test_room_state_store import open_conference
from vcbridge.app import create_app
from vcbridge.core.app_keys import DATABASE
from vcbridge.core.audit import Actor
from vcbridge.core.clock import FixedClock
from vcbridge.core.db.models import BridgeNode
from vcbridge.core.settings import Settings

H = dict[str, str]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return loopback_settings(database_url, tmp_path, node_id="node-a")


async def node_row(client: Client) -> tuple[int, str]:
    async with client.app[DATABASE].read() as session:
        row = (await session.execute(select(BridgeNode.incarnation, BridgeNode.state)
                                     .where(BridgeNode.id == "node-a"))).one()
        return int(row[0]), str(row[1])


async def test_a_process_superseded_under_its_node_id_hands_its_rooms_on_and_stops(
    client: Client, booker: H, clock: FixedClock, settings: Settings,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    cid = await open_conference(client, booker, clock)
    old = client.app[NODE]
    heard: list[dict[str, Any]] = []

    async def console(message: dict[str, Any]) -> None:
        heard.append(message)

    await client.app[ROOMS].rooms[cid].connect_control(Actor("booker1", "booker"), console)

    # The process freezes; its successor starts under the same node id.
    await old.silence()
    successor = await aiohttp_client(create_app(settings, clock=clock))
    new = successor.app[NODE]
    assert (old.incarnation, new.incarnation) == (1, 2)

    # The old one comes back: it sends its console to the node's row (now the
    # successor's), closes the room here, and takes neither the id nor the room back.
    await old.beat()
    assert not old.member
    assert cid not in client.app[ROOMS].rooms
    redirects = [(m["node"], m["url"]) for m in heard if m["type"] == "redirect"]
    assert redirects == [("node-a", new.identity.url)]
    await old.beat()  # were it still beating: the same, and nothing more
    assert len([m for m in heard if m["type"] == "redirect"]) == 1

    # The successor keeps its incarnation: nobody took the row from it.
    await new.beat()
    assert new.incarnation == 2 and await node_row(client) == (2, "live")

    # A site reaching the old process is sent on; the successor takes the room.
    placement = await old.resolve(cid)
    assert placement is not None and not old.serves(placement)
    placement = await new.resolve(cid)
    assert placement is not None and new.serves(placement)
    assert await node_row(client) == (2, "live")
