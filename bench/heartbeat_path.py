"""The heartbeat's fast path in one process: CPU per heartbeat of parsing the event-stream
message and `HealthMonitor.heartbeat` (the call's verdict, the samples, the site-side
gauges), without the network or the database.

`bench/monitoring.py` measures the whole server under 1,000 endpoints; on a machine
shared with other work its runs scatter by several points of a core, more than the
call's figures cost. This script isolates what the figures add: the same 1,000
endpoints' heartbeats, with and without a call (its summary and per-kind detail, as
the agent sends them), in process CPU time per heartbeat.

    .venv/bin/python bench/heartbeat_path.py              # a few seconds
    .venv/bin/python bench/heartbeat_path.py --rounds 50

A table goes to stderr, one JSON line to stdout."""

from __future__ import annotations

import project_path  # noqa: F401 - first: the project, not bench/, on sys.path

# isort: split

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from zoneinfo import ZoneInfo

from bench.monitoring import heartbeat_body
from bench.shared import log
from monitoring.health.monitor import HealthMonitor
from monitoring.health.store import EndpointInfo
from monitoring.health.wire import StreamHeartbeat
from monitoring.metrics.families import Metrics
from monitoring.metrics.site_quality import SiteQuality
from monitoring.wiring import site_quality
from vcbridge.core.clock import SystemClock
from vcbridge.core.http.parsing import parse_model
from vcbridge.core.settings import Settings

BODIES = 50  # distinct heartbeats, taken in turn


async def per_heartbeat_us(in_call: bool, endpoints: int, rounds: int) -> float:
    """Process CPU per heartbeat (µs) over `rounds` heartbeats of each endpoint."""
    monitor = HealthMonitor(Settings(health_heartbeat_min_gap_seconds=0), SystemClock(),
                            ZoneInfo("Asia/Ho_Chi_Minh"))
    metrics = Metrics()
    metrics.set_roster([f"SIM-{i:04d}" for i in range(endpoints)])
    site = SiteQuality(metrics, max_age=30)
    monitor.report_listeners.append(lambda code, report: site.report(code, site_quality(report)))
    known = [EndpointInfo(i, f"SIM-{i:04d}", "", "") for i in range(endpoints)]
    rng = random.Random(14)
    raws = [json.dumps({"type": "heartbeat", "body": heartbeat_body(rng if in_call else None)})
            for _ in range(BODIES)]
    for endpoint in known:  # first heartbeats: every endpoint's state and series exist
        await monitor.heartbeat(endpoint, parse_model(raws[0], StreamHeartbeat).body)
    state = monitor._state  # the recorder's queue, emptied as its task would
    state.changed.clear()
    start = time.process_time()
    for turn in range(rounds):
        for i, endpoint in enumerate(known):
            await monitor.heartbeat(
                endpoint, parse_model(raws[(i + turn) % BODIES], StreamHeartbeat).body)
        state.changed.clear()
    return (time.process_time() - start) / (rounds * endpoints) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5, help="alternate runs of each body")
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"without_call": [], "with_call": []}
    for _ in range(args.repeat):  # alternate, so both bodies see the same machine
        for name, in_call in (("without_call", False), ("with_call", True)):
            runs[name].append(round(asyncio.run(
                per_heartbeat_us(in_call, args.endpoints, args.rounds)), 1))
    medians = {name: statistics.median(values) for name, values in runs.items()}
    added = medians["with_call"] - medians["without_call"]
    for name, values in runs.items():
        log(f"{name}: median {medians[name]:.1f} µs per heartbeat (runs {values})")
    log(f"the call's figures add {added:.1f} µs per heartbeat: "
        f"{added * 200 / 10_000:.2f} % of a core at 200 heartbeats/s")
    print(json.dumps({
        "bench": "heartbeat_path", "endpoints": args.endpoints, "rounds": args.rounds,
        "us_per_heartbeat": medians, "runs": runs, "added_us": round(added, 1),
        "added_percent_of_a_core_at_200_per_s": round(added * 200 / 10_000, 2),
        "loadavg_1min": round(os.getloadavg()[0], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
