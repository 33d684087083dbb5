"""Room-state broadcasts under a burst: one at once, one at the end, the latest."""

from __future__ import annotations

import asyncio

from bridge.coalescer import Coalescer
from tests.test_bridge_media import eventually


class Counter:
    """A state that changes, and what each run of the action saw."""

    def __init__(self) -> None:
        self.value = 0
        self.seen: list[int] = []

    async def send(self) -> None:
        self.seen.append(self.value)
        await asyncio.sleep(0)  # a send yields to the loop, as a WebSocket write may


async def settled(coalescer: Coalescer) -> None:
    # Generous: only catches a run that never ends.
    await eventually(lambda: not coalescer.busy, 10)


async def test_a_single_change_is_sent_at_once() -> None:
    state = Counter()
    coalescer = Coalescer(state.send, interval=60)
    coalescer.request()
    for _ in range(5):
        await asyncio.sleep(0)
    assert state.seen == [0]  # not after the 60 s interval
    await coalescer.close()


async def test_a_burst_is_one_send_now_and_one_of_the_latest_state_after() -> None:
    state = Counter()
    coalescer = Coalescer(state.send, interval=0.05)
    for value in range(1, 1001):  # a thousand changes, each followed by a send that yields
        state.value = value
        coalescer.request()
        await asyncio.sleep(0)
    await settled(coalescer)
    # One send at once, then at most one per interval, the last one of the latest state.
    assert state.seen[0] == 1
    assert state.seen[-1] == 1000
    assert len(state.seen) < 100


async def test_changes_made_before_the_send_starts_go_in_that_send() -> None:
    state = Counter()
    coalescer = Coalescer(state.send, interval=0.05)
    for value in range(1, 1001):  # no yield in between: the first send is not out yet
        state.value = value
        coalescer.request()
    await settled(coalescer)
    assert state.seen == [1000]


async def test_a_change_during_a_send_is_not_lost() -> None:
    state = Counter()

    async def slow_send() -> None:
        await state.send()
        state.value = 2  # changed while this state was on its way
        coalescer.request()

    coalescer = Coalescer(slow_send, interval=0.01)
    state.value = 1
    coalescer.request()
    await asyncio.sleep(0.2)
    await coalescer.close()
    # The change made during each send was sent after it (the last one too).
    assert state.seen[:2] == [1, 2]
    assert state.seen[-1] == 2


async def test_after_a_quiet_interval_the_next_change_goes_at_once_again() -> None:
    state = Counter()
    coalescer = Coalescer(state.send, interval=0.02)
    coalescer.request()
    await settled(coalescer)
    state.value = 7
    coalescer.request()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert state.seen == [0, 7]
    await coalescer.close()


async def test_a_failing_send_does_not_stop_later_ones() -> None:
    calls: list[int] = []

    async def flaky() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("a client's socket broke")

    coalescer = Coalescer(flaky, interval=0.01)
    coalescer.request()
    await asyncio.sleep(0)
    coalescer.request()
    await settled(coalescer)
    assert calls == [0, 1]


async def test_closed_means_no_more_sends() -> None:
    state = Counter()
    coalescer = Coalescer(state.send, interval=0.05)
    coalescer.request()
    coalescer.request()  # pending for the end of the interval
    await asyncio.sleep(0)
    await coalescer.close()
    coalescer.request()
    await asyncio.sleep(0.15)
    assert state.seen == [0]
    assert not coalescer.busy
