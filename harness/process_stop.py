"""Stopping a child process the harness started: politely, then for sure."""

from __future__ import annotations

import subprocess

STOP_TIMEOUT_S = 5.0


def stop_process(process: subprocess.Popen[bytes] | None,
                 timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL after `timeout`; idempotent (a finished process is left)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
