"""A child process's share of the CPU, for benchmarks that run what stands for other
machines (sites, room systems) beside the service they measure."""

from __future__ import annotations

import contextlib
import os


def set_niceness(nice: int) -> None:
    """In a child before exec, started with `start_new_session=True`: take niceness
    `nice` for the process and for its session.

    With autogroup scheduling (Linux's default, and this machine's) the CPU is shared
    fairly between sessions first; a process's own nice value only counts within its
    session. So the session, a new one, is given the niceness too."""
    if not nice:
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
        group.write(str(nice))


def confine(pid: int, cpus: set[int]) -> None:
    """Run every thread `pid` has now on `cpus` only (threads it starts later inherit the
    mask of the thread that starts them). A process that has gone is left alone."""
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cpus)
