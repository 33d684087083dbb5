"""IT dashboard benchmark: Chromium's CPU while the board of 200 endpoints stays live.

On loopback, with a real `vcbridge serve` process (SQLite in a temporary directory):

1. The roster: the province's 31 endpoints, the 166 communes of 2025
   (`../shared/data/thanh-hoa-communes-2025.tsv`, as kind `district`: the roster
   has no commune kind yet) and, to reach `--endpoints` (200), a few provincial
   departments; an agent token for each.
2. A load generator holds each endpoint's event stream (as its agent does) and
   sends a heartbeat on it every `--interval` (5) seconds, spread evenly, the CPU
   figure alternating between 97 % and 10 %: every heartbeat turns its endpoint
   from ok to degraded (`high_cpu`) or back, so every endpoint has an
   `endpoint.health` event every 5 s (40 a second for 200): each tile changes
   colour and group, the board's worst case.
3. Debian's Chromium (headless, driven by Playwright) shows /dashboard to an IT
   account. After `--warmup` (15) seconds, the CPU time of all of Chromium's
   processes (utime + stime from /proc, every process under this script whose
   executable is Chromium's) is taken over `--window` (60) seconds.
   The page counts the health events it receives (a WebSocket wrapper installed
   before the page's scripts), to show the load really reached it.

Target: under 5 % of one core. The service's own CPU over the window is reported
too (it is not the target). Run it on an otherwise idle machine and note the load
average printed with the figures:

    .venv/bin/python bench/dashboard.py               # about 2 minutes
    .venv/bin/python bench/dashboard.py --endpoints 200 --window 60

A table goes to stderr, one JSON line to stdout at the end. A screenshot of the
board goes to test-artifacts/bench/dashboard-<n>.png.
"""

from __future__ import annotations

from project_path import ROOT  # first: the project, not bench/, on sys.path

# isort: split

import argparse
import asyncio
import contextlib
import csv
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.shared import log
from harness.chromium import chromium_missing, launch, log_in, new_page, password_of
from harness.service_process import Service, service_env

LOOPBACK = "127.0.0.1"
TARGET_PERCENT = 5.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
COMMUNES = ROOT.parent / "shared" / "data" / "thanh-hoa-communes-2025.tsv"
DEPARTMENTS = [  # provincial departments, to fill the roster up to --endpoints
    ("SO-NOI-VU", "Sở Nội vụ"), ("SO-TAI-CHINH", "Sở Tài chính"), ("SO-Y-TE", "Sở Y tế"),
    ("SO-GIAO-DUC", "Sở Giáo dục và Đào tạo"), ("SO-XAY-DUNG", "Sở Xây dựng"),
]
# Counts the page's `endpoint.health` messages (installed before its scripts).
COUNT_EVENTS = """
(() => {
  const Native = window.WebSocket;
  window.__healthEvents = 0;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (m) => {
        const health = typeof m.data === 'string' && m.data.includes('"endpoint.health"');
        if (health) window.__healthEvents += 1;
      });
    }
  };
})();
"""


def write_roster(path: Path, size: int) -> list[str]:
    """The province, the communes, departments: `size` endpoints; returns their codes."""
    document = yaml.safe_load((ROOT / "configs" / "endpoints.yaml").read_text(encoding="utf-8"))
    entries = list(document["endpoints"])
    if COMMUNES.exists():
        with COMMUNES.open(encoding="utf-8", newline="") as source:
            for row in csv.DictReader(source, delimiter="\t"):
                prefix = "PHUONG" if row["kind"] == "phuong" else "XA"
                entries.append({"code": f"{prefix}-{row['code']}", "kind": "district",
                                "name": row["name"], "name_en": row["name"]})
    else:  # a checkout without the shared data: numbered communes
        entries += [{"code": f"XA-{n:05d}", "kind": "district", "name": f"Xã số {n}"}
                    for n in range(1, 167)]
    entries += [{"code": code, "kind": "provincial", "name": name} for code, name in DEPARTMENTS]
    document["endpoints"] = entries[:size]
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return [e["code"] for e in document["endpoints"]]


async def issue_tokens(service: Service, codes: list[str]) -> dict[str, str]:
    """An agent token per endpoint, through the API."""
    tokens: dict[str, str] = {}
    headers = {"Authorization": f"Bearer {service.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        semaphore = asyncio.Semaphore(8)

        async def one(code: str) -> None:
            async with semaphore, http.post(f"{service.base}/api/v1/endpoints/{code}/tokens",
                                            json={"scope": "agent", "label": "bench"}) as r:
                body = await r.json()
                if r.status != 201:
                    raise RuntimeError(f"token for {code}: {r.status} {body}")
                tokens[code] = body["token"]

        await asyncio.gather(*(one(code) for code in codes))
    return tokens


def heartbeat(busy: bool) -> dict[str, Any]:
    return {"sent_at": datetime.now(UTC).isoformat(),
            "devices": {"camera": True, "microphone": True, "speaker": True},
            "cpu_percent": 97.0 if busy else 10.0,
            "network": {"interface": "eth0", "rtt_ms": 9.0}, "agent_version": "bench"}


class Load:
    """Every endpoint's event stream held, a heartbeat on it every `interval` seconds."""

    def __init__(self, server: str, tokens: dict[str, str], interval: float) -> None:
        self.server, self.tokens, self.interval = server, tokens, interval
        self.sent = 0
        self.answers: dict[str, int] = {}
        self.stop = asyncio.Event()

    async def run(self, ready: asyncio.Event, limit_seconds: float) -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            semaphore = asyncio.Semaphore(20)

            async def connect(code: str) -> aiohttp.ClientWebSocketResponse:
                async with semaphore:
                    return await http.ws_connect(
                        f"{self.server}/api/v1/events", heartbeat=20,
                        headers={"Authorization": f"Bearer {self.tokens[code]}"})

            codes = sorted(self.tokens)
            sockets = await asyncio.gather(*(connect(code) for code in codes))
            ready.set()
            loop = asyncio.get_running_loop()
            start = loop.time()

            async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
                async for message in ws:
                    kind = str(message.json().get("type"))
                    if kind in ("heartbeat.ok", "error"):
                        self.answers[kind] = self.answers.get(kind, 0) + 1

            async def endpoint(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
                with contextlib.suppress(TimeoutError):  # spread evenly over the interval
                    await asyncio.wait_for(self.stop.wait(), self.interval * index / len(sockets))
                reader = asyncio.create_task(read(ws))
                busy = index % 2 == 0
                # Bounded: stops when told, or after `limit_seconds` whatever happens.
                while not self.stop.is_set() and loop.time() - start < limit_seconds:
                    await ws.send_json({"type": "heartbeat", "body": heartbeat(busy)})
                    self.sent += 1
                    busy = not busy
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop.wait(), self.interval)
                reader.cancel()

            await asyncio.gather(*(endpoint(i, ws) for i, ws in enumerate(sockets)),
                                 return_exceptions=True)
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def chromium_pids() -> list[int]:
    """Every process under this one whose executable is Chromium's."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            todo.append(child)
            with contextlib.suppress(OSError):
                if "chrom" in Path(os.readlink(f"/proc/{child}/exe")).name:
                    found.append(child)
    return found


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_of(pids: list[int]) -> dict[int, float]:
    return {pid: value for pid in pids if (value := cpu_seconds(pid)) is not None}


def process_type(pid: int) -> str:
    """Chromium's name for the process (`--type=renderer`, ...; the browser has none)."""
    with contextlib.suppress(OSError):
        # Chromium rewrites its process title: arguments may be joined by spaces.
        for arg in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split():
            if arg.startswith(b"--type="):
                return arg[7:].decode()
    return "browser"


async def measure(args: argparse.Namespace, service: Service, codes: list[str],
                  tokens: dict[str, str]) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    load = Load(service.base, tokens, args.interval)
    ready = asyncio.Event()
    limit = args.warmup + args.window + 300
    flood = asyncio.create_task(load.run(ready, limit))
    await asyncio.wait_for(ready.wait(), 120)
    log(f"{len(codes)} event streams held; heartbeats every {args.interval} s each")
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        errors: list[str] = []
        page = await new_page(browser, service.base, errors, init_script=COUNT_EVENTS)
        await log_in(page, "/dashboard", "it-bench")
        await page.wait_for_function(
            f"() => document.querySelectorAll('.htile').length === {len(codes)}", timeout=60000)
        log(f"dashboard shows {len(codes)} tiles; warming up {args.warmup} s")
        await asyncio.sleep(args.warmup)
        pids = chromium_pids()
        events_before = await page.evaluate("window.__healthEvents")
        before, server_before = cpu_of(pids), cpu_seconds(service.process.pid)
        load_start = os.getloadavg()
        started = time.monotonic()
        log(f"measuring {args.window} s over {len(pids)} Chromium processes")
        await asyncio.sleep(args.window)
        after_pids = chromium_pids()
        after, server_after = cpu_of(after_pids), cpu_seconds(service.process.pid)
        kinds = {pid: process_type(pid) for pid in after}
        elapsed = time.monotonic() - started
        load_end = os.getloadavg()
        events = await page.evaluate("window.__healthEvents") - events_before
        counts = {key: await page.text_content(f'.filter[data-filter="{key}"] .filter-count')
                  for key in ("all", "ok", "degraded", "offline")}
        shots = ROOT / "test-artifacts" / "bench"
        shots.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(shots / f"dashboard-{len(codes)}.png"))
        await page.screenshot(path=str(shots / f"dashboard-{len(codes)}-full.png"), full_page=True)
        await browser.close()
    load.stop.set()
    await flood
    # Processes alive at both ends count their difference; one born in the window all of it.
    used = sum(after[pid] - before.get(pid, 0.0) for pid in after)
    by_type: dict[str, float] = {}
    for pid in after:
        kind = kinds[pid]
        by_type[kind] = by_type.get(kind, 0.0) + 100 * (after[pid] - before.get(pid, 0.0)) / elapsed
    chromium_percent = 100 * used / elapsed
    server_percent = (100 * (server_after - server_before) / elapsed
                      if server_before is not None and server_after is not None else None)
    return {
        "chromium_cpu_percent": round(chromium_percent, 2),
        "target_percent": TARGET_PERCENT,
        "ok": chromium_percent < TARGET_PERCENT,
        "chromium_processes": len(after_pids),
        "chromium_cpu_percent_by_process": {k: round(v, 2) for k, v in sorted(by_type.items())},
        "health_events_in_page": events,
        "health_events_per_s": round(events / elapsed, 1),
        "heartbeats_sent": load.sent,
        "heartbeat_answers": load.answers,
        "tiles": counts,
        "service_cpu_percent": round(server_percent, 1) if server_percent is not None else None,
        "load_avg_start": [round(x, 2) for x in load_start],
        "load_avg_end": [round(x, 2) for x in load_end],
        "page_errors": errors,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"bench": "dashboard", "endpoints": args.endpoints,
                              "interval_s": args.interval, "window_s": args.window,
                              "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="vcbridge-bench-dashboard-") as tmp:
        work = Path(tmp)
        codes = write_roster(work / "endpoints.yaml", args.endpoints)
        service = Service(work / "service", service_env(
            VCBRIDGE_ROSTER_FILE=str(work / "endpoints.yaml"),
            VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK))
        try:
            service.wait_healthy(90)
            service.login()
            status, body = service.request("POST", "/api/v1/users", {
                "username": "it-bench", "password": password_of("it-bench"), "role": "it"})
            if status != 201:
                raise RuntimeError(f"IT account: {status} {body}")
            log(f"server up (pid {service.process.pid}); {len(codes)} endpoints; issuing tokens")
            tokens = asyncio.run(issue_tokens(service, codes))
            report |= asyncio.run(measure(args, service, codes, tokens))
        finally:
            service.stop()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--interval", type=float, default=5.0,
                        help="seconds between two heartbeats of one endpoint")
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--window", type=float, default=60.0)
    args = parser.parse_args()
    missing = chromium_missing()
    if missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    report = run(args)
    rows = [("Chromium CPU (all processes)", f"{report['chromium_cpu_percent']} % of a core "
             f"(target < {TARGET_PERCENT} %)"),
            ("health events reaching the page", f"{report['health_events_per_s']} /s"),
            ("service CPU", f"{report['service_cpu_percent']} %"),
            ("load average (start, end)", f"{report['load_avg_start']} {report['load_avg_end']}")]
    for name, value in rows:
        print(f"{name:34} {value}", file=sys.stderr)
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
