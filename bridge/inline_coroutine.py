"""Running a coroutine to its end inside a synchronous callback, when it never waits.

The bridge's receive path runs in the event loop's datagram callback
(`bridge/datagram_tap.py`). What it calls there is sometimes a coroutine that,
in practice, never suspends: aiortc's receiver handler, or an RTCP send on the
direct path (`bridge/rtcp_sender.py`). Creating a task per packet for it would
cost a trip through the loop; `run_now` drives it in the caller's call instead,
and only if it does wait does a task finish it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

_pending: set[asyncio.Task[None]] = set()


def run_now(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run `coroutine` in this call; if it has to wait, a task finishes it. Its errors
    are logged, never raised: the caller is an event-loop callback."""
    done, waiting = _step(coroutine)
    if done:
        return
    task = asyncio.get_running_loop().create_task(_finish(coroutine, waiting))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


def _step(coroutine: Coroutine[Any, Any, None]) -> tuple[bool, Any]:
    # Resume it once: (True, None) when it ended (an error is logged), else (False, what
    # it now waits for).
    try:
        return False, coroutine.send(None)
    except StopIteration:
        return True, None
    except Exception:
        log.exception("a coroutine run in a callback failed")
        return True, None


async def _finish(coroutine: Coroutine[Any, Any, None], waiting: Any) -> None:
    # What a Task does with a coroutine: wait for what it yielded, then resume it.
    done = False
    while not done:
        if waiting is None:
            await asyncio.sleep(0)
        else:
            waiting._asyncio_future_blocking = False
            await asyncio.wait([waiting])
        done, waiting = _step(coroutine)
