"""Running untrusted or unbounded work in child processes, each job within a time budget.

Some work must never run on the event loop and cannot be bounded from inside:
pure-Python parsers fed hostile input (a PDF whose page tree loops, a rule that
never occurs) search without yielding, and a thread can neither be stopped nor
keep the GIL from being held. So `WorkerPool` keeps up to `workers` child
processes (`python -m <module>`, started when first needed and reused), sends
each a job as one JSON line, and waits for the answer at most the job's budget.
A worker past its budget is killed (the next job starts a new one) and the
caller gets `WorkerTimeout`; a worker that dies (out of memory, a signal) gives
`WorkerStopped`.

The child side is `serve(handle)`: it reads jobs from stdin and answers on
stdout until stdin closes, so a worker never outlives its service. Used by the
recurrence rules (scheduler/recurrence_worker.py) and the meeting documents
(documents/reader_worker.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

# Starting Python and importing a library, on a machine that may be busy: not the budget.
STARTUP_SECONDS = 60.0
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


class WorkerTimeout(Exception):
    """The job took longer than its budget; its worker was killed."""


class WorkerStopped(Exception):
    """The worker died during the job (killed, out of memory)."""


class _Worker:
    """One child process and its pipes; it runs one job at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, module: str, line_limit: int) -> _Worker:
        # The child imports this checkout's code, whatever the installed copy is.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PROJECT_ROOT, env.get("PYTHONPATH", "")) if p
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            limit=line_limit,
        )
        worker = cls(process)
        try:
            ready = await asyncio.wait_for(worker._read(), STARTUP_SECONDS)
        except BaseException:
            await worker.kill()
            raise
        if ready != {"ready": True}:
            await worker.kill()
            raise RuntimeError(f"worker {module} did not start: {ready!r}")
        return worker

    async def _read(self) -> Any:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise EOFError("the worker stopped")
        return json.loads(line)

    async def run(self, job: dict[str, Any], budget: float) -> Any:
        """Send `job`; its answer, or TimeoutError after `budget` seconds."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(job).encode() + b"\n")
        await self.process.stdin.drain()
        return await asyncio.wait_for(self._read(), budget)

    async def kill(self) -> None:
        """Stop the process at once (it may be deep in a loop) and reap it."""
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


class WorkerPool:
    """Up to `workers` processes of `python -m module`, each job within a budget."""

    def __init__(self, module: str, *, workers: int = 2, line_limit: int = 1024 * 1024) -> None:
        self.module = module
        self.line_limit = line_limit
        self._slots = asyncio.Semaphore(workers)
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False

    def pids(self) -> list[int]:
        """The process ids of the running workers (for tests and diagnostics)."""
        return [w.process.pid for w in (*self._idle, *self._busy)]

    async def run(self, job: dict[str, Any], budget_seconds: float) -> Any:
        """The worker's JSON answer to `job`; WorkerTimeout past `budget_seconds` (of wall
        time, once a worker is free), WorkerStopped if the worker died."""
        async with self._slots:
            if self._closed:
                raise RuntimeError(f"the workers of {self.module} are shut down")
            worker = self._idle.pop() if self._idle else await _Worker.start(
                self.module, self.line_limit)
            self._busy.add(worker)
            try:
                answer = await worker.run(job, budget_seconds)
            except TimeoutError:
                await self._discard(worker)
                log.warning("%s: a job took more than %.1f s; worker %d replaced",
                            self.module, budget_seconds, worker.process.pid)
                raise WorkerTimeout from None
            except (EOFError, ConnectionError, ValueError):
                await self._discard(worker)
                log.warning("%s: worker %d stopped during a job", self.module,
                            worker.process.pid)
                raise WorkerStopped from None
            except BaseException:
                # Cancelled: the worker's state is unknown, never reuse it.
                await self._discard(worker)
                raise
            self._busy.discard(worker)
            self._idle.append(worker)
        return answer

    async def _discard(self, worker: _Worker) -> None:
        self._busy.discard(worker)
        await asyncio.shield(worker.kill())

    async def close(self) -> None:
        """Stop every worker (at the application's cleanup)."""
        self._closed = True
        idle, self._idle = self._idle, []
        busy, self._busy = list(self._busy), set()
        await asyncio.gather(*(w.stop() for w in idle), *(w.kill() for w in busy))


def serve(handle: Callable[[dict[str, Any]], dict[str, Any]],
          jobs: IO[str] | None = None, answers: IO[str] | None = None) -> None:
    """A worker's loop: one JSON job per line in, `handle`'s answer as one line out.

    An exception in `handle` is a bug, not bad input: it is logged and answered as
    `{"error": ...}`, and the worker stays up for the next job."""
    # Ctrl-C in the service's terminal reaches the whole group; the service stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    jobs = jobs or sys.stdin
    answers = answers or sys.stdout
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in jobs:
        try:
            answer = handle(json.loads(line))
        except Exception as exc:
            log.exception("worker job failed: %r", line[:200])
            answer = {"error": f"the job failed ({type(exc).__name__})"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
