"""What the benchmark scripts share: figures, a scratch PostgreSQL database, the machine."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg


def log(message: str) -> None:
    """A timestamped progress line on stderr; stdout keeps only the JSON line."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of `values` (non-empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(ms: Sequence[float], digits: int = 1) -> dict[str, Any]:
    """n, p50, p99, max and mean of values already in milliseconds, rounded to `digits`."""
    if not ms:
        return {"n": 0, "p50": None, "p99": None, "max": None, "mean": None}
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 50), digits),
        "p99": round(percentile(ms, 99), digits),
        "max": round(max(ms), digits),
        "mean": round(sum(ms) / len(ms), digits),
    }


@asynccontextmanager
async def scratch_postgres(base_url: str) -> AsyncIterator[tuple[str, str]]:
    """A new PostgreSQL database, dropped afterwards; yields (URL, server version)."""
    dsn = base_url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(dsn, timeout=5)
    name = f"vcbridge_bench_{uuid.uuid4().hex[:12]}"
    try:
        version = str(await admin.fetchval("SHOW server_version"))
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield base_url.rsplit("/", 1)[0] + f"/{name}", version
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# One database's run: (URL, "sqlite" or "postgres", a scratch directory) -> its figures.
DatabaseRun = Callable[[str, str, Path], Awaitable[dict[str, Any]]]


async def on_each_database(
    wanted: Sequence[str], postgres_url: str, machine: dict[str, Any], run: DatabaseRun,
    failures: tuple[type[Exception], ...] = (Exception,), logger: logging.Logger | None = None,
) -> dict[str, dict[str, Any]]:
    """`run` on a fresh SQLite file and/or a scratch PostgreSQL database, each timed.

    A failure (`failures`) is reported in that database's figures (and logged with
    its traceback on `logger`), and the next database still runs. The PostgreSQL
    server's version goes to `machine["postgres"]`."""
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="vcbridge-bench-") as tmp:
        for db in wanted:
            started = time.perf_counter()
            try:
                if db == "sqlite":
                    url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
                    results[db] = await run(url, db, Path(tmp))
                else:
                    async with scratch_postgres(postgres_url) as (url, version):
                        machine["postgres"] = version
                        results[db] = await run(url, db, Path(tmp))
            except failures as exc:
                if logger is not None:
                    logger.exception("%s failed", db)
                results[db] = {"error": f"{type(exc).__name__}: {exc}"}
            results[db]["elapsed_s"] = round(time.perf_counter() - started, 1)
    return results


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, if readable."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_native_against_python(benchmark: str, rounds: dict[str, list[float]], unit: str,
                                **settings: Any) -> None:
    """The last line of a loop bench that times a path in Python and in C: each of
    `rounds`' medians (`audio_python`, `audio_native`, `video_python`, `video_native`;
    microseconds a `unit`), native ÷ Python for audio and video, the machine and
    `settings`, as one JSON line."""
    figures = {name: round(statistics.median(r), 2) for name, r in rounds.items()}
    print(json.dumps({"benchmark": benchmark, "machine": {
        "nproc": os.cpu_count(), "cpu_model": cpu_model(), "python": sys.version.split()[0]},
        **settings, f"us_per_{unit}_median": figures,
        **{f"{kind}_ratio": round(figures[f"{kind}_native"] / figures[f"{kind}_python"], 3)
           for kind in ("audio", "video")}}))
