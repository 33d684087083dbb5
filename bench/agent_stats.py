"""What the call's figures cost the endpoint agent: its own CPU with the statistics in its
heartbeats on versus off.

A real `vcbridge serve` (bridge on loopback), a chair agent process sending a generated
15 fps picture and a tone, and the measured agent for a district in a process of its
own (`--child`), in the same running conference: first with the call's figures off,
then on, then off and on again (alternating, so drift in the machine's load falls on
both). Each child joins, waits `--warmup` seconds, then measures for `--seconds`: its
process's CPU time (user + system, `resource.getrusage`) as a share of one core, and the
time each heartbeat spends reading the figures (`EndpointAgent.call_figures`).
Heartbeats every `--heartbeat` seconds (5, the service's default).

    python bench/agent_stats.py [--seconds 30] [--warmup 5] [--heartbeat 5]

Progress on stderr; one JSON line on stdout at the end. Note the load average beside
the figures: the machine's other work moves the process's CPU share.
"""

from __future__ import annotations

import project_path  # noqa: F401 - first: the project, not bench/, on sys.path

# isort: split

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.shared import log, summary
from bridge.agent.endpoint_agent import EndpointAgent
from bridge.agent.settings import AgentSettings
from bridge.ice_policy import restrict_host_addresses
from harness.service_process import Service, service_env

SITE = "HUYEN-NGA-SON"
CHAIR = "UBND-TINH"
LOOPBACK = "127.0.0.1"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def child(args: argparse.Namespace) -> dict[str, Any]:
    """One measured agent: join, warm up, measure; the result."""
    restrict_host_addresses([LOOPBACK])
    settings = AgentSettings(server=args.server, endpoint=SITE, token=os.environ["BENCH_TOKEN"],
                             ice_host_addresses=(LOOPBACK,), heartbeat_seconds=args.heartbeat,
                             summary_seconds=3600, call_stats=args.call_stats == "on")
    agent = EndpointAgent(settings)
    reads_ms: list[float] = []
    measuring = False
    read = agent.call_figures

    async def timed(conference: int, seconds: float) -> dict[str, Any] | None:
        started = time.perf_counter()
        figures = await read(conference, seconds)
        if measuring:
            reads_ms.append((time.perf_counter() - started) * 1000)
        return figures

    agent.call_figures = timed  # type: ignore[method-assign]
    task = asyncio.create_task(agent.run())
    try:
        deadline = time.monotonic() + 40
        while not agent.stats()["joined"]:
            if time.monotonic() > deadline or task.done():
                raise RuntimeError("the measured agent did not join")
            await asyncio.sleep(0.1)
        await asyncio.sleep(args.warmup)
        measuring = True
        cpu, wall = _cpu_seconds(), time.monotonic()
        frames = sum(agent.received.frames.values())
        await asyncio.sleep(args.seconds)
        cpu, wall = _cpu_seconds() - cpu, time.monotonic() - wall
        frames = sum(agent.received.frames.values()) - frames
        return {"call_stats": args.call_stats, "cpu_percent_of_a_core": round(100 * cpu / wall, 2),
                "seconds": round(wall, 1), "frames_received": frames,
                "heartbeats_read": len(reads_ms), "read_ms": summary(reads_ms, 3),
                "loadavg_1min": round(os.getloadavg()[0], 2)}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def endpoint_token(service: Service, code: str) -> str:
    status, body = service.request("POST", f"/api/v1/endpoints/{code}/tokens", {})
    assert status == 201, body
    return str(body["token"])


def run_child(service: Service, mode: str, args: argparse.Namespace, token: str
              ) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VCBRIDGE_")}
    env["BENCH_TOKEN"] = token
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, "--child", "--server", service.base, "--call-stats", mode,
         "--seconds", str(args.seconds), "--warmup", str(args.warmup),
         "--heartbeat", str(args.heartbeat)],
        env=env, capture_output=True, text=True, timeout=args.seconds + args.warmup + 120,
        check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the measured agent failed:\n{result.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    log(f"call stats {mode}: {measured}")
    return measured


def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-agent-stats-") as scratch:
        service = Service(Path(scratch) / "service",
                          service_env(VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK))
        chair: subprocess.Popen[bytes] | None = None
        try:
            service.wait_healthy(timeout=60)
            service.login()
            env = {k: v for k, v in os.environ.items() if not k.startswith("VCBRIDGE_")}
            env.update(VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK,
                       VCBRIDGE_AGENT_TOKEN=endpoint_token(service, CHAIR))
            chair = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "vcbridge.cli", "agent", "--server", service.base,
                 "--endpoint", CHAIR, "--media", "testsrc"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rounds = ["off", "on", "off", "on"]
            minutes = len(rounds) * (args.seconds + args.warmup + 30) / 60 + 5
            start = datetime.now(UTC) + timedelta(seconds=3)
            status, conference = service.request("POST", "/api/v1/conferences", {
                "title": "Đo chi phí thống kê cuộc gọi", "chair": CHAIR,
                "participants": [CHAIR, SITE], "start": start.isoformat(),
                "end": (start + timedelta(minutes=minutes)).isoformat(), "setup_minutes": 0})
            assert status == 201, conference
            token = endpoint_token(service, SITE)
            load_before = os.getloadavg()[0]
            runs = [run_child(service, mode, args, token) for mode in rounds]
            load_after = os.getloadavg()[0]
        finally:
            if chair is not None:
                chair.terminate()
                chair.wait(timeout=10)
            service.stop()

    def mean(mode: str, key: str) -> float:
        values = [r[key] for r in runs if r["call_stats"] == mode]
        return round(sum(values) / len(values), 2)

    on_reads = [r["read_ms"]["mean"] for r in runs if r["call_stats"] == "on"]
    read_ms = round(sum(on_reads) / len(on_reads), 3)
    return {
        "bench": "agent_stats",
        "heartbeat_seconds": args.heartbeat,
        "seconds_per_run": args.seconds,
        "cpu_percent_of_a_core_off": mean("off", "cpu_percent_of_a_core"),
        "cpu_percent_of_a_core_on": mean("on", "cpu_percent_of_a_core"),
        "read_ms_per_heartbeat": read_ms,
        # What the reading itself costs, independent of the rest of the machine's load.
        "read_cost_percent_of_a_core": round(100 * read_ms / 1000 / args.heartbeat, 4),
        "runs": runs,
        "loadavg_1min": [round(load_before, 2), round(load_after, 2)],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--heartbeat", type=float, default=5.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--server", help=argparse.SUPPRESS)
    parser.add_argument("--call-stats", choices=["on", "off"], default="on",
                        help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(asyncio.run(child(arguments))))
    else:
        print(json.dumps(main(arguments)))
