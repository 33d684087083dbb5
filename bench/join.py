"""Join benchmark: from "Tham gia" to the first picture, in Chromium and in the agent.

Two figures, each the median of `--joins` (10) joins, on loopback:

- browser: a district operator's /join page in a real headless Chromium
  (Debian's /usr/bin/chromium, fake camera and microphone, driven by
  Playwright). The page is logged in and shows its open conference, whose
  chair (an aiortc site client, colour card and tone) is in the room. Time =
  from the click on "Tham gia" to the first decoded video frame, both taken
  inside the page (`performance.now()`; the page's getStats() polled every
  10 ms: inbound video `framesDecoded > 0`). Then "Rời hội nghị", and again.
  Target: under 2 s.
- agent: the unattended endpoint agent (`bridge/agent/`, testsrc media),
  following its event stream. For each join a new conference is booked
  between a chair (already in the room) and the agent's endpoint, starting
  three seconds later; at the start the scheduler invites the endpoint. Time =
  from the invitation reaching the agent (`endpoint.invited` or
  `conference.live`, whichever comes first) to the first video frame it
  receives from the chair. Target: under 1 s.

Run it from the project root with the project's virtualenv:

    .venv/bin/python bench/join.py               # both, 10 joins each
    .venv/bin/python bench/join.py --joins 5 --only browser

A table goes to stderr and one JSON line with every figure to stdout at the
end. The machine's load average is reported with the figures: other work on
a 2-core machine shows directly in join times.
"""

from __future__ import annotations

import project_path  # noqa: F401 - first: the project, not bench/, on sys.path

# isort: split

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration
from aiortc.mediastreams import MediaStreamError

from bench.shared import log
from bridge.agent.endpoint_agent import EndpointAgent
from bridge.agent.generated_media import ColourCardTrack, ToneTrack
from bridge.agent.received_media import ReceivedMedia
from bridge.agent.settings import AgentSettings
from bridge.agent.site_client import Received, SiteClient
from bridge.ice_policy import allowed_networks, restrict_host_addresses
from harness.chromium import CHROMIUM, chromium_missing, launch, log_in, new_page
from harness.service_process import Service, service_env
from vcbridge.core.db.models import RUNNING_STATUSES

LOOPBACK = "127.0.0.1"
TARGETS = {"browser_s": 2.0, "agent_s": 1.0}
BROWSER_SITE, BROWSER_CHAIR = "HUYEN-NGA-SON", "UBND-TINH"
# (chair, agent's endpoint) for the agent's joins: a new pair each time, so the
# conferences never overlap for an endpoint.
AGENT_PAIRS = [
    ("TINH-UY", "HUYEN-BA-THUOC"), ("SO-TTTT", "HUYEN-CAM-THUY"),
    ("DBQH-HDND", "HUYEN-DONG-SON"), ("TP-THANH-HOA", "HUYEN-HA-TRUNG"),
    ("TP-SAM-SON", "HUYEN-HAU-LOC"), ("TX-BIM-SON", "HUYEN-HOANG-HOA"),
    ("HUYEN-LANG-CHANH", "HUYEN-MUONG-LAT"), ("HUYEN-NGOC-LAC", "HUYEN-NHU-THANH"),
    ("HUYEN-NHU-XUAN", "HUYEN-NONG-CONG"), ("HUYEN-QUAN-HOA", "HUYEN-QUAN-SON"),
    ("HUYEN-QUANG-XUONG", "HUYEN-THACH-THANH"), ("HUYEN-THIEU-HOA", "HUYEN-THO-XUAN"),
    ("HUYEN-THUONG-XUAN", "HUYEN-TINH-GIA"), ("HUYEN-TRIEU-SON", "HUYEN-VINH-LOC"),
]

# Clicks "Tham gia" and polls the page's new peer connections until a video
# frame is decoded; returns the milliseconds in between (the page's clock), and
# when both peer connections were connected (ICE and DTLS done).
JOIN_AND_TIME = """
async () => {
  const before = window.__testPeerConnections.length;
  const start = performance.now();
  let connected = null;
  document.querySelector('#join-button').click();
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    const pcs = window.__testPeerConnections.slice(before);
    const up = pcs.length === 2 && pcs.every((pc) => pc.connectionState === 'connected');
    if (connected === null && up) {
      connected = performance.now() - start;
    }
    for (const pc of pcs) {
      if (pc.connectionState === 'closed') continue;
      const report = await pc.getStats();
      let decoded = 0;
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') decoded += s.framesDecoded || 0;
      });
      if (decoded > 0) return [performance.now() - start, connected];
    }
    if (performance.now() - start > 20000) return [-1, connected];
  }
}
"""


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median_s": round(statistics.median(ordered), 3),
        "min_s": round(ordered[0], 3),
        "p90_s": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
        "max_s": round(ordered[-1], 3),
    }


def book(service: Service, chair: str, site: str, start: datetime, setup_minutes: int,
         minutes: int = 60) -> int:
    status, body = service.request("POST", "/api/v1/conferences", {
        "title": "Đo thời gian tham gia", "chair": chair, "participants": [chair, site],
        "start": start.isoformat(), "end": (start + timedelta(minutes=minutes)).isoformat(),
        "setup_minutes": setup_minutes,
    })
    if status != 201:
        raise RuntimeError(f"booking failed: {status} {body}")
    return int(body["id"])


def token(service: Service, code: str) -> str:
    status, body = service.request("POST", f"/api/v1/endpoints/{code}/tokens", {})
    if status != 201:
        raise RuntimeError(f"token for {code}: {status} {body}")
    return str(body["token"])


async def poll(check: Callable[[], Any], timeout: float) -> bool:
    """Whether `check()` became true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


async def wait_open(service: Service, conference_id: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = service.request("GET", f"/api/v1/conferences/{conference_id}")
        if status == 200 and body["status"] in RUNNING_STATUSES:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"conference {conference_id} did not open")


async def chair_client(service: Service, conference_id: int, code: str) -> SiteClient:
    """The chair in the room: a colour card and a tone; what it receives is drained."""
    tasks: list[asyncio.Task[None]] = []

    async def drain(item: Received) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await item.track.recv()

    client = SiteClient(service.base, conference_id, token(service, code),
                        RTCConfiguration(iceServers=[]), audio=ToneTrack(440.0),
                        video=ColourCardTrack((200, 40, 40), width=640, height=360),
                        on_received=lambda item: tasks.append(asyncio.ensure_future(drain(item))),
                        remote_networks=allowed_networks([LOOPBACK]))
    await client.join()
    return client


# -- the browser -------------------------------------------------------------------------------


async def browser_joins(service: Service, joins: int) -> tuple[list[float], list[float]]:
    from playwright.async_api import async_playwright

    status, body = service.request("POST", "/api/v1/users", {
        "username": "bench-operator", "password": "pw-bench-operator-123456",
        "role": "operator", "endpoint": BROWSER_SITE})
    if status != 201:
        raise RuntimeError(f"creating the operator: {status} {body}")
    conference_id = book(service, BROWSER_CHAIR, BROWSER_SITE,
                         datetime.now(UTC) + timedelta(seconds=5), setup_minutes=1)
    await wait_open(service, conference_id)
    chair = await chair_client(service, conference_id, BROWSER_CHAIR)
    times: list[float] = []
    connects: list[float] = []
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            page = await new_page(browser, service.base, errors)
            await log_in(page, "/join", "bench-operator")
            await page.wait_for_selector("#join-button:not([disabled])")
            await page.wait_for_function(
                "() => document.querySelector('#preview').readyState >= 2")  # camera open
            for attempt in range(1, joins + 1):
                elapsed, connected = await page.evaluate(JOIN_AND_TIME)
                if elapsed < 0:
                    raise RuntimeError("no video frame within 20 s of pressing Tham gia")
                times.append(elapsed / 1000)
                connects.append((connected or elapsed) / 1000)
                log(f"browser join {attempt}: {elapsed / 1000:.3f} s "
                    f"(media connected after {(connected or elapsed) / 1000:.3f} s)")
                await page.wait_for_selector("#call-status[data-mode=call]")
                await page.click("#leave-button")
                await page.wait_for_selector("#join-button:not([disabled])")
                await asyncio.sleep(0.5)
        finally:
            await browser.close()
            await chair.close()
    if errors:
        raise RuntimeError(f"page errors: {errors}")
    return times, connects


# -- the agent -----------------------------------------------------------------------------------


class TimedReceived(ReceivedMedia):
    """What the agent receives, noting when the first picture of the chair arrived."""

    first_frame_at: float | None = None
    frame_seen: asyncio.Event

    async def drain(self, conference_id: int, item: Received) -> None:
        if item.slot == "chair" and self.first_frame_at is None:
            with contextlib.suppress(MediaStreamError):
                await item.track.recv()
                self.first_frame_at = time.monotonic()
                self.frame_seen.set()
        await super().drain(conference_id, item)


class TimedAgent(EndpointAgent):
    """The endpoint agent, noting when its invitation came."""

    invited_at: float | None = None
    invitation_lag: float | None = None
    received: TimedReceived

    def on_event(self, event: dict[str, Any]) -> None:
        if (self.invited_at is None
                and event.get("type") in ("endpoint.invited", "conference.live")
                and event.get("endpoint") in (None, self.endpoint)):
            self.invited_at = time.monotonic()
            sent = datetime.fromisoformat(str(event["at"]))
            self.invitation_lag = (datetime.now(UTC) - sent).total_seconds()
        super().on_event(event)


async def agent_joins(service: Service, joins: int) -> tuple[list[float], list[float]]:
    times: list[float] = []
    lags: list[float] = []
    for attempt in range(1, joins + 1):
        chair_code, site = AGENT_PAIRS[(attempt - 1) % len(AGENT_PAIRS)]
        elapsed, lag = await agent_join(service, chair_code, site)
        times.append(elapsed)
        lags.append(lag)
        log(f"agent join {attempt} ({site}): {elapsed:.3f} s from the invitation "
            f"(the invitation took {lag:.3f} s to reach it)")
    return times, lags


async def agent_join(service: Service, chair_code: str, site: str) -> tuple[float, float]:
    """One join of a fresh agent: (invitation to first frame, invitation delivery), s."""
    received = TimedReceived()
    received.frame_seen = asyncio.Event()
    agent = TimedAgent(AgentSettings(server=service.base, endpoint=site,
                                     token=token(service, site), ice_host_addresses=[LOOPBACK],
                                     summary_seconds=3600), received=received)
    task = asyncio.create_task(agent.run())
    chair: SiteClient | None = None
    try:
        if not await poll(lambda: agent.stats()["stream_connected"], 15):
            raise RuntimeError(f"the agent of {site} never reached the event stream")
        # The room opens at once (one minute of setup); the start, three seconds
        # later, invites the agent's endpoint. The chair is in by then.
        conference_id = book(service, chair_code, site,
                             datetime.now(UTC) + timedelta(seconds=3), setup_minutes=1)
        await wait_open(service, conference_id)
        chair = await chair_client(service, conference_id, chair_code)
        await asyncio.wait_for(received.frame_seen.wait(), 30)
        assert agent.invited_at is not None and received.first_frame_at is not None
        service.request("DELETE", f"/api/v1/conferences/{conference_id}")
        await poll(lambda: not agent.stats()["attending"], 10)  # it leaves on its own
        return received.first_frame_at - agent.invited_at, agent.invitation_lag or 0.0
    finally:
        if chair is not None:
            await chair.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- main ----------------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    restrict_host_addresses([LOOPBACK])
    data_dir = Path(tempfile.mkdtemp(prefix="vcbridge-bench-join-"))
    service = Service(data_dir, service_env(VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK))
    report: dict[str, Any] = {"bench": "join", "joins": args.joins, "targets": TARGETS,
                              "chromium": str(CHROMIUM)}
    try:
        service.wait_healthy()
        service.login()
        load_before = os.getloadavg()[0]
        if args.only in (None, "browser"):
            log("browser: pressing Tham gia on /join, to the first decoded video frame")
            times, connects = await browser_joins(service, args.joins)
            report["browser"] = summary(times)
            report["browser"]["media_connected_median_s"] = round(statistics.median(connects), 3)
        if args.only in (None, "agent"):
            log("agent: from its invitation to the first video frame from the chair")
            times, lags = await agent_joins(service, args.joins)
            report["agent"] = summary(times)
            report["agent"]["invitation_delivery_median_s"] = round(statistics.median(lags), 3)
        report["loadavg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        await asyncio.sleep(0.5)  # let closing peer connections finish
    finally:
        service.stop()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--joins", type=int, default=10, help="joins per figure (10)")
    parser.add_argument("--only", choices=("browser", "agent"), default=None)
    args = parser.parse_args()
    if args.only != "agent" and (missing := chromium_missing()):
        print(f"cannot run the browser part: {missing}", file=sys.stderr)
        return 2
    report = asyncio.run(main_async(args))
    print(f"\n{'join':<10} {'n':>3} {'median':>8} {'min':>7} {'p90':>7} {'max':>7} "
          f"{'target':>7}", file=sys.stderr)
    ok = True
    for name in ("browser", "agent"):
        if name not in report:
            continue
        row = report[name]
        target = TARGETS[f"{name}_s"]
        ok = ok and row["median_s"] < target
        print(f"{name:<10} {row['n']:>3} {row['median_s']:>7.3f}s {row['min_s']:>6.3f}s "
              f"{row['p90_s']:>6.3f}s {row['max_s']:>6.3f}s {target:>6.1f}s", file=sys.stderr)
    print(f"load average (1 min) before/after: {report['loadavg_1min']}", file=sys.stderr)
    report["met_targets"] = ok
    print(json.dumps(report, separators=(",", ":")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
