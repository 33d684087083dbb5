"""Rejoin benchmark: a district's network drops for a while; how soon after it returns
does media flow again?

Issue 4's target: a site whose network drops for a few seconds comes back by
itself and keeps its seat and floor state; media again within 3 s of the
network returning. Measured with real parts only:

1. A network namespace (`vcb-rejoin-<pid>`, `harness/netns.py`) joined to this
   one by a veth pair (a /30 of 10.231.x.y): the district's own network.
   Nothing is sent anywhere else (the bridge and the agents advertise only
   these addresses).
2. `vcbridge serve` listens on 10.231.0.1; the chair's endpoint agent
   (`vcbridge agent`, testsrc media) runs here; the district's agent runs in
   the namespace, in a worker process of this script that reports what it
   receives every 50 ms.
3. A conference of the two is booked to start at once; both agents join on
   their own; the district sees the chair's video and hears the mix.
4. For each outage (`--outages`, seconds): the link goes black both ways
   (a queue of length 0 on each end: packets vanish as on a failed WAN link;
   the sockets see at most ENOBUFS), then returns. Measured from the return: the first
   video frame and the first audio frame the district receives again, and
   whether it rejoined (a new peer connection) or the old one carried on.
   Between outages, the district must be receiving again before the next.

    .venv/bin/python bench/rejoin.py                       # outages of 5, 20 and 45 s
    .venv/bin/python bench/rejoin.py --outages 5,5,45,45   # several of each

Needs root (network namespaces, tc). Progress goes to stderr, one JSON line to
stdout at the end."""

from __future__ import annotations

import project_path  # noqa: F401 - first: the project, not bench/, on sys.path

# isort: split

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.shared import log
from harness.netns import Namespace
from harness.service_process import Service, service_env

CHAIR, DISTRICT = "UBND-TINH", "HUYEN-NGA-SON"
TARGET_SECONDS = 3.0
SAMPLE_SECONDS = 0.05


# -- the district's agent, in the namespace ---------------------------------------------


async def worker(server: str, token: str, address: str) -> None:
    """Run the district's agent; print what it has received every 50 ms."""
    import logging

    from bridge.agent.endpoint_agent import EndpointAgent
    from bridge.agent.settings import AgentSettings

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    agent = EndpointAgent(AgentSettings(server=server, endpoint=DISTRICT, token=token,
                                        media="testsrc", ice_host_addresses=[address],
                                        summary_seconds=3600))
    task = asyncio.create_task(agent.run())
    try:
        while not task.done():
            stats = agent.stats()
            print(json.dumps({"t": time.time(), "frames": stats["received_frames"],
                              "joins": stats["joins"], "rejoins": stats["rejoins"],
                              "video_restarts": stats["video_restarts"]}), flush=True)
            await asyncio.sleep(SAMPLE_SECONDS)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- the harness --------------------------------------------------------------------------


class Samples:
    """The worker's reports, read as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.rows: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                self.rows.append(json.loads(line))

    def latest(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {"frames": {}, "joins": 0, "rejoins": 0}

    async def wait_for(self, check: Any, since: float, timeout: float) -> float | None:
        """The time of the first report made after `since` that passes `check`, or None."""
        start = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for row in self.rows[start:]:
                if row["t"] >= since and check(row):
                    return float(row["t"])
            start = len(self.rows)
            await asyncio.sleep(SAMPLE_SECONDS / 2)
        return None


def grew(before: dict[str, Any], slot: str) -> Any:
    count = before["frames"].get(slot, 0)
    return lambda row: row["frames"].get(slot, 0) > count


async def measure(options: argparse.Namespace) -> dict[str, Any]:
    outages = [float(x) for x in options.outages.split(",")]
    with Namespace("rejoin") as netns, contextlib.ExitStack() as stack:
        tmp = options.out_dir or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="vcbridge-bench-rejoin-"))
        # Listening beyond loopback (the namespace's link) needs a scrape token.
        env = service_env(VCBRIDGE_ICE_HOST_ADDRESSES=netns.here, VCBRIDGE_ICE_SERVERS="",
                          VCBRIDGE_WARN_MINUTES="0", VCBRIDGE_HEALTH_PREFLIGHT_WAIT_SECONDS="0",
                          VCBRIDGE_METRICS_TOKEN=os.urandom(16).hex())
        service = Service(Path(tmp) / "service", env, host=netns.here)
        chair = district = None
        try:
            service.wait_healthy()
            service.login()
            tokens = {}
            for code in (CHAIR, DISTRICT):
                status, body = service.request("POST", f"/api/v1/endpoints/{code}/tokens", {})
                assert status == 201, body
                tokens[code] = body["token"]
            agent_env = dict(env, VCBRIDGE_AGENT_TOKEN=tokens[CHAIR])
            chair = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "vcbridge.cli", "agent", "--server", service.base,
                "--endpoint", CHAIR, "--media", "testsrc", env=agent_env,
                stdout=subprocess.DEVNULL, stderr=(Path(tmp) / "chair.log").open("w"))
            district = await asyncio.create_subprocess_exec(
                *netns.exec_prefix, sys.executable, __file__, "--worker",
                service.base, tokens[DISTRICT], netns.there, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=(Path(tmp) / "district.log").open("w"))
            samples = Samples(district)
            start = datetime.now(UTC) + timedelta(seconds=3)
            status, body = service.request("POST", "/api/v1/conferences", {
                "title": "Rejoin benchmark", "chair": CHAIR, "participants": [CHAIR, DISTRICT],
                "start": start.isoformat(timespec="seconds"),
                "end": (start + timedelta(minutes=30)).isoformat(timespec="seconds"),
                "setup_minutes": 0})
            assert status == 201, body
            first = await samples.wait_for(lambda r: r["frames"].get("chair", 0) > 30, 0, 60)
            if first is None:
                raise RuntimeError(f"the district never received video: {samples.latest()}")
            log("both agents joined; the district receives the chair's video")
            results = []
            for seconds in outages:
                await asyncio.sleep(options.between)
                before = samples.latest()
                log(f"network black for {seconds:.0f} s")
                netns.black(True)
                await asyncio.sleep(seconds)
                during = samples.latest()
                netns.black(False)
                back = time.time()
                video = await samples.wait_for(grew(during, "chair"), back, options.give_up)
                audio = await samples.wait_for(grew(during, "mix"), back, options.give_up)
                after = samples.latest()
                again = None if video is None or audio is None else max(video, audio) - back
                result = {
                    "outage_s": seconds,
                    "media_again_s": None if again is None else round(again, 2),
                    "video_restarts": after.get("video_restarts", 0) - before.get(
                        "video_restarts", 0),
                    "video_again_s": None if video is None else round(video - back, 2),
                    "audio_again_s": None if audio is None else round(audio - back, 2),
                    "rejoined": after["joins"] > before["joins"],
                }
                results.append(result)
                log(f"  media again after {result['video_again_s']} s (video), "
                    f"{result['audio_again_s']} s (audio); rejoined: {result['rejoined']}")
                if video is None:
                    break
            return {"bench": "rejoin", "target_s": TARGET_SECONDS, "outages": results,
                    "never_again": sum(r["media_again_s"] is None for r in results),
                    "loadavg_1min": os.getloadavg()[0]}
        finally:
            for process in (district, chair):
                if process is not None and process.returncode is None:
                    process.terminate()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(process.wait(), 10)
            service.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outages", default="5,20,45", help="outage lengths in seconds")
    parser.add_argument("--between", type=float, default=5.0,
                        help="seconds of normal media before each outage")
    parser.add_argument("--give-up", type=float, default=60.0,
                        help="seconds to wait for media after the network returns")
    parser.add_argument("--out-dir", help="keep the logs here (default: a temporary directory)")
    parser.add_argument("--worker", nargs=3, metavar=("SERVER", "TOKEN", "ADDRESS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(worker(*args.worker))
        return 0
    # A plain kill must still remove the namespace and the veth pair (finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    report = asyncio.run(measure(args))
    results = report["outages"]
    for seconds in sorted({r["outage_s"] for r in results}):
        these = [r for r in results if r["outage_s"] == seconds]
        times = [r["media_again_s"] for r in these if r["media_again_s"] is not None]
        median = f"{statistics.median(times):.2f} s" if times else "-"
        log(f"outage {seconds:.0f} s: media again after {median} (median of {len(times)}; "
            f"{len(these) - len(times)} never); target < {TARGET_SECONDS:.0f} s")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
