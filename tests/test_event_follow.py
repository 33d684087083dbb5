"""`EventBus.follow`: what the scheduler, the rooms, the readiness publisher and the
metrics rely on when they act on the bus (order, filtering, errors, gaps, stopping)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Client
from vcbridge.core.app_keys import CLOCK, DATABASE, EVENT_BUS
from vcbridge.core.event_types import EventType
from vcbridge.core.events import BusEvent, NewEvent

JOINED, LEFT = EventType.ENDPOINT_JOINED, EventType.ENDPOINT_LEFT
DROPPED = EventType.ENDPOINT_DROPPED


async def publish(client: Client, *types: EventType) -> list[int]:
    app = client.app
    async with app[DATABASE].write() as session:
        return await app[EVENT_BUS].publish_many(
            session, app[CLOCK].now(), [NewEvent(t, endpoint="UBND-TINH") for t in types])


async def until(check: Callable[[], Any], what: str, timeout: float = 10) -> None:
    """Wait for `check()` (a generous bound: only broken behaviour reaches it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_the_named_types_arrive_in_order_from_the_moment_follow_returns(
    client: Client,
) -> None:
    seen: list[tuple[int, str]] = []

    async def handler(event: BusEvent) -> None:
        seen.append((event.seq, event.type))

    follower = client.app[EVENT_BUS].follow({JOINED, LEFT}, handler)
    try:
        seqs = await publish(client, JOINED, DROPPED, LEFT, JOINED)  # at once: none missed
        await until(lambda: len(seen) == 3, "three events")
        assert seen == [(seqs[0], JOINED), (seqs[2], LEFT), (seqs[3], JOINED)]
    finally:
        await follower.stop()


async def test_a_failing_handler_is_logged_and_the_next_event_follows(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[int] = []

    async def handler(event: BusEvent) -> None:
        seen.append(event.seq)
        if len(seen) == 1:
            raise RuntimeError("a malformed event")

    follower = client.app[EVENT_BUS].follow(None, handler, name="picky")
    try:
        with caplog.at_level(logging.ERROR):
            seqs = await publish(client, JOINED, LEFT)
            await until(lambda: len(seen) == 2, "both events")
        assert seen == seqs
        assert any("picky: event" in r.getMessage() and "not handled" in r.getMessage()
                   for r in caplog.records)
    finally:
        await follower.stop()


async def test_a_follower_cut_off_subscribes_again_and_catches_up(client: Client) -> None:
    """A handler too slow for a burst overflows its queue: the bus cuts it off, it
    subscribes again, `on_gap` catches up, and later events arrive again."""
    bus = client.app[EVENT_BUS]
    release = asyncio.Event()
    seen: list[int] = []
    gaps: list[int] = []

    async def slow(event: BusEvent) -> None:
        await release.wait()
        seen.append(event.seq)

    async def on_gap() -> None:
        gaps.append(len(seen))

    follower = bus.follow({JOINED}, slow, on_gap=on_gap, retry_seconds=0.0, name="slow")
    try:
        burst = await publish(client, *[JOINED] * 2100)  # the queue holds 2,000
        await until(lambda: bus.last_seq >= burst[-1], "the burst delivered")
        release.set()
        await until(lambda: gaps, "the gap noticed")
        assert follower.gaps == 1
        assert len(seen) < len(burst)  # events were missed: on_gap's job
        after = await publish(client, JOINED)
        await until(lambda: seen and seen[-1] == after[0], "an event after the gap")
    finally:
        await follower.stop()


async def test_stop_cancels_the_running_handler_and_unsubscribes(client: Client) -> None:
    bus = client.app[EVENT_BUS]
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def forever(event: BusEvent) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    follower = bus.follow(None, forever)
    subscription = follower.subscription
    await publish(client, JOINED)
    async with asyncio.timeout(10):
        await started.wait()
    await follower.stop()
    assert cancelled == [True]
    assert follower.task is not None and follower.task.done()
    assert subscription not in bus._subscriptions
