"""A stuck part cannot keep the service from stopping (vcbridge/core/shutdown.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from vcbridge.core.shutdown import bound_cleanups


async def test_a_cleanup_that_never_ends_is_cut_off_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    async def database(app: web.Application) -> AsyncIterator[None]:
        ran.append("database up")
        yield
        ran.append("database closed")

    async def stuck(app: web.Application) -> AsyncIterator[None]:
        ran.append("stuck up")
        yield
        await asyncio.Event().wait()  # a task that never ends, say

    app = web.Application()
    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(stuck)
    bound_cleanups(app, seconds=0.2)
    runner = web.AppRunner(app)
    await runner.setup()
    assert ran == ["database up", "stuck up"]
    with caplog.at_level("ERROR", logger="vcbridge.core.shutdown"):
        await asyncio.wait_for(runner.cleanup(), 10)  # would hang for ever unbounded
    assert ran[-1] == "database closed", "the parts set up before the stuck one still close"
    assert any("stuck" in r.getMessage() and "cancelled" in r.getMessage()
               for r in caplog.records)


async def test_a_cleanup_that_ends_is_untouched(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    async def part(app: web.Application) -> AsyncIterator[None]:
        yield
        await asyncio.sleep(0.05)
        ran.append("closed")

    app = web.Application()
    app.cleanup_ctx.append(part)
    bound_cleanups(app, seconds=5)
    runner = web.AppRunner(app)
    await runner.setup()
    await runner.cleanup()
    assert ran == ["closed"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
