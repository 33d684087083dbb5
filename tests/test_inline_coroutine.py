"""Running a coroutine inside a synchronous callback (`bridge/inline_coroutine.py`)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bridge.inline_coroutine import run_now


async def test_a_coroutine_that_never_waits_has_run_when_the_call_returns() -> None:
    done: list[str] = []

    async def send() -> None:
        done.append("sent")

    run_now(send())
    assert done == ["sent"]


async def test_a_coroutine_that_waits_is_finished_by_a_task() -> None:
    steps: list[str] = []
    ready = asyncio.get_running_loop().create_future()

    async def send() -> None:
        steps.append("started")
        steps.append(await ready)
        await asyncio.sleep(0)
        steps.append("ended")

    run_now(send())
    assert steps == ["started"]
    ready.set_result("resumed")
    for _ in range(10):
        if steps[-1] == "ended":
            break
        await asyncio.sleep(0)
    assert steps == ["started", "resumed", "ended"]


async def test_an_error_is_logged_not_raised_before_or_after_a_wait(
        caplog: pytest.LogCaptureFixture) -> None:
    ready = asyncio.get_running_loop().create_future()

    async def fails_at_once() -> None:
        raise RuntimeError("at once")

    async def fails_later() -> None:
        await ready
        raise RuntimeError("later")

    with caplog.at_level(logging.ERROR, logger="bridge.inline_coroutine"):
        run_now(fails_at_once())
        run_now(fails_later())
        ready.set_result(None)
        for _ in range(10):
            await asyncio.sleep(0)
    assert "at once" in caplog.text and "later" in caplog.text
