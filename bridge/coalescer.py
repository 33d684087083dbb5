"""At most one run of an action per interval, the last request never lost.

The room sends its whole state to every client after each change. Under a
burst of changes (many floor actions, sites joining at once, the active
speaker moving) most of those states are out of date before they arrive, and
each costs a JSON encoding and a send per client on the loop that carries the
media. A `Coalescer` runs the action at once when it has been quiet for an
interval (no added delay for a single change), and folds every request made
while it runs or during the following interval into one more run at the end
of it. The action reads the state when it runs, so that run sends the latest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Coalescer:
    """Runs `action` on `request()`, at most once per `interval` seconds."""

    def __init__(self, action: Callable[[], Awaitable[None]], interval: float) -> None:
        self._action = action
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._pending = False
        self._closed = False

    def request(self) -> None:
        """Ask for a run: now if idle, else at the end of the current interval."""
        if self._closed:
            return
        if self._task is not None and not self._task.done():
            self._pending = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def busy(self) -> bool:
        """A run or its quiet interval is in progress (a request now would be folded)."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            self._pending = False
            try:
                await self._action()
            except Exception:
                log.exception("a coalesced action failed")
            await asyncio.sleep(self._interval)
            if not self._pending or self._closed:
                return

    async def close(self) -> None:
        """No more runs; a pending one is dropped (the caller sends its own last word)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
