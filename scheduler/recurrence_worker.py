"""Expanding recurrence rules in worker processes, each job within a time budget.

dateutil is pure Python and, for a rule whose occurrences are rare or never
come, searches without yielding (to the year 9999: 19 s for a daily rule).
On the event loop that stops the whole service; a thread cannot be stopped.
So `RecurrenceWorkers` runs the expansion in the core's `WorkerPool` (child
processes `python -m scheduler.recurrence_worker`, started when first needed):
a worker past `budget_seconds` is killed, and the rule is refused with
`RecurrenceError`."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.recurrence import RecurrenceError, expand
from vcbridge.core.worker_pool import WorkerPool, WorkerStopped, WorkerTimeout, serve

log = logging.getLogger(__name__)

# Bookings are rare; two workers keep one slow rule from holding up another booker.
WORKERS = 2


class RecurrenceWorkers:
    """Expands RRULEs off the event loop, each within `budget_seconds` of wall time."""

    def __init__(self, budget_seconds: float, workers: int = WORKERS) -> None:
        self.budget_seconds = budget_seconds
        # An answer is one JSON line: 2,000 occurrences take ~60 KB.
        self._pool = WorkerPool(__name__, workers=workers, line_limit=1024 * 1024)

    def pids(self) -> list[int]:
        """The process ids of the running workers (for tests and diagnostics)."""
        return self._pool.pids()

    async def expand(
        self,
        text: str,
        start: datetime,
        duration: timedelta,
        zone: ZoneInfo,
        *,
        max_occurrences: int,
        horizon_end: datetime,
    ) -> list[datetime]:
        """`scheduler.recurrence.expand` in a worker process; RecurrenceError when the
        rule is refused or its expansion takes longer than the budget."""
        job = {
            "rrule": text,
            "start": start.isoformat(),
            "duration": duration.total_seconds(),
            "zone": zone.key,
            "max_occurrences": max_occurrences,
            "horizon_end": horizon_end.isoformat(),
        }
        try:
            answer = await self._pool.run(job, self.budget_seconds)
        except WorkerTimeout:
            log.warning("rrule %r took more than %.1f s to expand", text[:100],
                        self.budget_seconds)
            raise RecurrenceError(
                f"the rrule takes too long to expand (more than {self.budget_seconds:g} s); "
                "give a simpler rule"
            ) from None
        except WorkerStopped:
            raise RecurrenceError("the rrule could not be expanded (the worker stopped)") \
                from None
        if "error" in answer:
            raise RecurrenceError(str(answer["error"]))
        return [datetime.fromisoformat(s) for s in answer["starts"]]

    async def close(self) -> None:
        """Stop every worker (at the application's cleanup)."""
        await self._pool.close()


def _answer(job: dict[str, Any]) -> dict[str, Any]:
    try:
        starts = expand(
            job["rrule"],
            datetime.fromisoformat(job["start"]),
            timedelta(seconds=job["duration"]),
            ZoneInfo(job["zone"]),
            max_occurrences=job["max_occurrences"],
            horizon_end=datetime.fromisoformat(job["horizon_end"]),
        )
    except RecurrenceError as exc:
        return {"error": str(exc)}
    return {"starts": [s.isoformat() for s in starts]}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    serve(_answer)
