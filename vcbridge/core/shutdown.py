"""A shutdown that ends: every cleanup step of the application within a time bound.

aiohttp runs the cleanup half of each `cleanup_ctx` one after the other, and waits
for each as long as it takes. One part that waits for ever (a task that never ends,
a lock never released) would keep the whole service from stopping: SIGTERM ignored,
the database never closed. `bound_cleanups` wraps every registered context so that
its cleanup is cancelled after `seconds`, with an ERROR naming the part, and the
next part's cleanup still runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from aiohttp import web

log = logging.getLogger(__name__)

# What aiohttp's `cleanup_ctx` takes: an async generator function or a context manager.
CleanupContext = Callable[
    [web.Application], AsyncIterator[None] | AbstractAsyncContextManager[None]]

# Longer than any part's own bound (the lifecycle scheduler waits 15 s for its jobs).
CLEANUP_STEP_SECONDS = 30.0


def bounded(context: CleanupContext, seconds: float
            ) -> Callable[[web.Application], AsyncIterator[None]]:
    """`context` with its cleanup (the code after its `yield`) cut off after `seconds`."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        made = context(app)
        finish: Callable[[], Awaitable[object]]
        if isinstance(made, AbstractAsyncContextManager):
            await made.__aenter__()  # startup: unbounded, as aiohttp does it
            finish = lambda: made.__aexit__(None, None, None)  # noqa: E731
        else:
            steps = made.__aiter__()
            await steps.__anext__()
            finish = lambda: anext(steps, None)  # noqa: E731
        yield
        name = getattr(context, "__qualname__", repr(context))
        try:
            async with asyncio.timeout(seconds):
                await finish()
        except TimeoutError:
            log.error("shutdown: the cleanup of %s took more than %.0f s and was cancelled",
                      name, seconds)

    return run


def bound_cleanups(app: web.Application, seconds: float = CLEANUP_STEP_SECONDS) -> None:
    """Bound the cleanup of every context registered on `app` so far."""
    contexts = list(app.cleanup_ctx)
    app.cleanup_ctx.clear()
    app.cleanup_ctx.extend(bounded(c, seconds) for c in contexts)
