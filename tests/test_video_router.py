"""Keyframe requests to a site's camera: a burst collapses into one now and one at the end
of the interval, none is lost, and one asked before the SSRC is known waits for it.

The receiver is a stand-in at the network's edge: it records the PLIs the bridge would
send (their RTCP is tested in test_rtcp_sender.py); the timing is real."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from bridge.video_router import VideoSource

INTERVAL = 0.2  # short, so the test is quick (the bridge's: KEYFRAME_REQUEST_INTERVAL)


class Receiver:
    """Records each PLI: when, and for which SSRC."""

    def __init__(self) -> None:
        self.plis: list[tuple[float, int]] = []

    async def _send_rtcp_pli(self, ssrc: int) -> None:
        self.plis.append((time.monotonic(), ssrc))


def source_with(receiver: Receiver, ssrc: int | None = 1234) -> VideoSource:
    source = VideoSource("HUYEN-NGA-SON", keyframe_interval=INTERVAL)
    source.attach(cast(Any, receiver))
    if ssrc is not None:
        source.learn_ssrc(ssrc)
    return source


async def settle() -> None:
    # Longer than the interval, so a deferred request has gone out.
    await asyncio.sleep(INTERVAL * 2.5)


async def test_a_burst_of_requests_is_one_now_and_one_at_the_end_of_the_interval() -> None:
    receiver = Receiver()
    source = source_with(receiver)
    asked = time.monotonic()
    for _ in range(30):  # thirty sites joining at once, each asking
        source.request_keyframe()
        await asyncio.sleep(0.001)
    await settle()
    assert [ssrc for _, ssrc in receiver.plis] == [1234, 1234]
    first, second = (at - asked for at, _ in receiver.plis)
    assert first < INTERVAL / 2  # at once
    # The deferred one at the end of the interval: not dropped, not a full interval late.
    assert INTERVAL * 0.9 <= second < INTERVAL * 1.9, second


async def test_a_request_after_a_quiet_interval_goes_at_once() -> None:
    receiver = Receiver()
    source = source_with(receiver)
    source.request_keyframe()
    await settle()
    asked = time.monotonic()
    source.request_keyframe()
    await asyncio.sleep(0.05)
    assert len(receiver.plis) == 2
    assert receiver.plis[1][0] - asked < INTERVAL / 2


async def test_a_request_before_the_ssrc_is_known_goes_when_it_is() -> None:
    receiver = Receiver()
    source = source_with(receiver, ssrc=None)
    source.request_keyframe()
    source.request_keyframe()
    await settle()
    assert receiver.plis == []  # nowhere to send it yet
    source.learn_ssrc(4321)
    await asyncio.sleep(0.05)
    assert [ssrc for _, ssrc in receiver.plis] == [4321]

