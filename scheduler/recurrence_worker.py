"""Expanding recurrence rules in worker processes, each job within a time budget.

dateutil is pure Python and, for a rule whose occurrences are rare or never
come, searches without yielding (to the year 9999: 19 s for a daily rule).
On the event loop that stops the whole service; a thread cannot be stopped.
So `RecurrenceWorkers` keeps up to `WORKERS` child processes (started when
first needed, `python -m scheduler.recurrence_worker`), sends each a job as
one JSON line, and waits for the answer at most `budget_seconds`. A worker
past its budget is killed (the next job starts a new one) and the rule is
refused with `RecurrenceError`.

The child side (`serve`) reads jobs from stdin and answers on stdout until
stdin closes, so a worker never outlives its service."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from scheduler.recurrence import RecurrenceError, expand

log = logging.getLogger(__name__)

# Bookings are rare; two workers keep one slow rule from holding up another booker.
WORKERS = 2
# Starting Python and importing dateutil, on a machine that may be busy: not the budget.
STARTUP_SECONDS = 60.0
# An answer is one JSON line: 2,000 occurrences take ~60 KB.
_LINE_LIMIT = 1024 * 1024
_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)


class _Worker:
    """One child process and its pipes; it runs one job at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls) -> _Worker:
        # The child imports this checkout's code, whatever the installed copy is.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PROJECT_ROOT, env.get("PYTHONPATH", "")) if p
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scheduler.recurrence_worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            limit=_LINE_LIMIT,
        )
        worker = cls(process)
        try:
            ready = await asyncio.wait_for(worker._read(), STARTUP_SECONDS)
        except BaseException:
            await worker.kill()
            raise
        if ready != {"ready": True}:
            await worker.kill()
            raise RuntimeError(f"recurrence worker did not start: {ready!r}")
        return worker

    async def _read(self) -> Any:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise EOFError("the recurrence worker stopped")
        return json.loads(line)

    async def run(self, job: dict[str, Any], budget: float) -> Any:
        """Send `job`; its answer, or TimeoutError after `budget` seconds."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(job).encode() + b"\n")
        await self.process.stdin.drain()
        return await asyncio.wait_for(self._read(), budget)

    async def kill(self) -> None:
        """Stop the process at once (it may be deep in a search) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()

    async def stop(self) -> None:
        """Close its input so it ends by itself; kill it if it does not soon."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            await self.kill()


class RecurrenceWorkers:
    """Expands RRULEs off the event loop, each within `budget_seconds` of wall time."""

    def __init__(self, budget_seconds: float, workers: int = WORKERS) -> None:
        self.budget_seconds = budget_seconds
        self._slots = asyncio.Semaphore(workers)
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False

    def pids(self) -> list[int]:
        """The process ids of the running workers (for tests and diagnostics)."""
        return [w.process.pid for w in (*self._idle, *self._busy)]

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
        async with self._slots:
            if self._closed:
                raise RuntimeError("the recurrence workers are shut down")
            worker = self._idle.pop() if self._idle else await _Worker.start()
            self._busy.add(worker)
            try:
                answer = await worker.run(job, self.budget_seconds)
            except TimeoutError:
                await self._discard(worker)
                log.warning("rrule %r took more than %.1f s to expand; worker %d replaced",
                            text[:100], self.budget_seconds, worker.process.pid)
                raise RecurrenceError(
                    f"the rrule takes too long to expand (more than {self.budget_seconds:g} s); "
                    "give a simpler rule"
                ) from None
            except (EOFError, ConnectionError, ValueError):
                # It died (out of memory, killed): the next job starts another.
                await self._discard(worker)
                log.warning("recurrence worker %d stopped during %r", worker.process.pid,
                            text[:100])
                raise RecurrenceError("the rrule could not be expanded (the worker stopped)") \
                    from None
            except BaseException:
                # Cancelled: the worker's state is unknown, never reuse it.
                await self._discard(worker)
                raise
            self._busy.discard(worker)
            self._idle.append(worker)
        if "error" in answer:
            raise RecurrenceError(str(answer["error"]))
        return [datetime.fromisoformat(s) for s in answer["starts"]]

    async def _discard(self, worker: _Worker) -> None:
        self._busy.discard(worker)
        await asyncio.shield(worker.kill())

    async def close(self) -> None:
        """Stop every worker (at the application's cleanup)."""
        self._closed = True
        idle, self._idle = self._idle, []
        busy, self._busy = list(self._busy), set()
        await asyncio.gather(*(w.stop() for w in idle), *(w.kill() for w in busy))


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


def serve(jobs: IO[str], answers: IO[str]) -> None:
    """The worker's loop: one JSON job per line in, one JSON answer per line out."""
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in jobs:
        try:
            answer = _answer(json.loads(line))
        except Exception as exc:  # a bug, not a bad rule: say so, stay up for the next job
            log.exception("recurrence worker failed on %r", line[:200])
            answer = {"error": f"the rrule could not be expanded ({type(exc).__name__})"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    # Ctrl-C in the service's terminal reaches the whole group; the service stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO)
    serve(sys.stdin, sys.stdout)
