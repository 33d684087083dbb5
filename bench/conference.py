"""Conference benchmark: the bridge process alone, with N simulated sites in other processes.

The scenario of the issue: the province's 31 endpoints in one conference for
at least 60 s, each sending 640x360 15 fps VP8 at about 500 kbit/s and Opus;
every site shows the chair and the floor holder, the chair a grid of every
other site; the chair gives the floor to another site every 10 s.

Targets on this 2-core machine, for the full 31-site conference (issue 16's; the
machines this runs on differ by up to a factor of two, so compare with a run of
the older code on the same machine, `--bridge-code`):
- all bridge processes together at most 40 % of one core (aim: 30 %);
- audio packet loss at the sites under 1 %;
- no memory growth of the bridge over the run;
- every site receives at least 14 fps;
- floor switch (grant to the new holder's video at the sites) under 1 s;
- join (invitation to the first video frame) under 2 s.

Run it from the project root with the project's virtualenv:

    .venv/bin/python bench/conference.py --sites 31 --seconds 60
    .venv/bin/python bench/conference.py --sites 5,10,20,31     # a series
    .venv/bin/python bench/conference.py --sites 31 --py-spy .venv/bin/py-spy  # + profile
    .venv/bin/python bench/conference.py --sites 31 --path-costs  # + CPU per call, by path
    .venv/bin/python bench/conference.py --sites 31 --pin   # the bridge alone on CPU 0

(`python -m bench.conference` works too.) A table goes to stderr and one JSON
line with every figure to stdout at the end. One 31-site run takes about
2.5 minutes; the first run also encodes the media (a few minutes, once).

On a machine shared with other work, the bridge and the sites compete with
it for the two cores and the figures are no longer the bridge's own. Each
run reports how long the bridge's event loop waited for a CPU (from
/proc/<pid>/schedstat; "contended" above 10 %) and what the other processes
used. `--bridge-nice -20 --nice -10` (root) gives the bridge and then the
load processes priority over the rest: each child runs in a session of its
own, and with autogroup scheduling (Linux's default) the session's
niceness is set too, since a process's own niceness only counts within its
session. `--load-uvloop` (if uvloop is installed) makes the load processes
about a third cheaper; the bridge runs on uvloop as the service does by
default (settings: event_loop), or on Python's own loop with
`--bridge-asyncio`. Memory: the bridge warms up for about three minutes (RSS
grows, then levels off); judge growth with `--seconds 300` and the slope
over the last third of the run.

What happens, for each site count N:

1. Media are encoded once (cached in `<tmp>/vcbridge-bench-media/`, see
   `bench/conference_media.py`): a distinct VP8 clip and a speech-like Opus
   clip per site; two sites "talk" louder than the others.
2. `vcbridge serve` starts in its own process: SQLite in a fresh temporary
   data directory, host candidates restricted to 127.0.0.1, no ICE servers,
   cheap password hashing. The harness logs in as admin and issues an agent
   token per endpoint.
3. The harness books one conference of N participants (UBND-TINH chairs,
   then the roster's order) starting `--lead` seconds later with no setup
   time, and starts the load processes (`bench/load_sites.py`): the chair
   alone in one (it receives all the video), the other sites `--per-process`
   to a process. Each simulated site opens its own event stream, as an
   endpoint agent does, and all must listen before the start. The scheduler
   opens the room at the start and invites everyone (`endpoint.invited`);
   each site joins when it sees its invitation. Join time = first video
   frame at the site minus the moment the site received its invitation.
4. When every site receives video, after `--settle` seconds the steady part
   of the run begins: `--seconds` long, the chair granting the floor to the
   next site every `--floor-interval` seconds (the first grant at its
   start). A site records when its "floor" slot first shows a frame of the
   new holder (frames are recognised by a hash of their bytes, see
   `bench/load_sites.py`); floor switch time = that minus the grant's send
   time.
5. CPU of the bridge and of each load process from /proc/<pid>/stat (utime +
   stime, every second, as % of one core: median / mean / max over the
   steady part), resident memory from /proc/<pid>/statm (when the steady
   part starts and when it ends; the slope of a linear fit over it and over
   its last third), and the whole machine's busy time from /proc/stat, so
   other work on the machine shows, with the hypervisor's steal apart (a
   virtual machine whose host is busy: the bridge then falls behind with
   nothing on this machine to blame). The bridge's log is scanned for ICE
   consent expiries, "database is locked" and skipped scheduler ticks.
6. Stop: the load processes report their counters, then the bridge stops.
   Every child is killed at the end, on Ctrl-C and on errors too (and dies
   with the harness: PR_SET_PDEATHSIG).

`--hostile` (issue 11: one booked site must not stall the others' media):
each site count runs twice, first a baseline without an attacker (skip it
with `--no-baseline`), then the same conference with one more booked site,
`BENCH-HOSTILE` (added to a copy of the roster given to the bridge as
`roster_file`: a 31-site run keeps all 31 honest sites). It sends no media;
`bench/hostile_site.py`, in its own process, attacks signaling over the
steady part in bounded rounds: an offer of 1,000 media lines, an offer
without a fingerprint, 19 floor requests with a 400 KB junk field, a
1,000-a-second floor flood, 10 reconnections; it stops by itself a second
before the steady part ends. Both runs time `GET /healthz` every 0.1 s (the
bridge answers on its event loop: the round trip bounds the loop's stalls
from above; the baseline shows its normal cost). With the bridge's default
`signaling_joins_per_minute` (20) most attacks are refused before the
upgrade (`http_429`); `--hostile-joins-per-minute 600` lets every attack
reach the room, to measure what each costs there. Reported in one more
table and under `hostile` in the JSON: the other sites' fps (min, median,
worst second), audio loss (max, median: mixing ticks the bridge skipped
because its loop was late by more than a frame show here, as a shortfall
against 50 packets a second with a contiguous RTP stream), mix frames missing
(timestamp gaps), `/healthz` median / p99 / max, the slowest `/healthz` while
each kind of attack was under way, and the attacker's outcomes by error code
(`bad_offer`, `bad_message`, `rate_limited`, `http_429`; `answered` would be
a defence that failed).

Received video is counted per slot in one-second buckets over the steady
part; a site's own floor time (it sees no floor video while it holds the
floor) is left out of its floor slot. Audio loss at a site is the larger of
the sequence-number gaps and the shortfall against 50 packets a second (the
bridge's audio clock, one packet per 20 ms frame); mix frames the bridge
dropped for a slow receiver show as RTP timestamp gaps and are reported too.
"""

from __future__ import annotations

from project_path import ROOT  # first: the project, not bench/, on sys.path

# isort: split

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bench import conference_media, path_costs, profile_summary
from bench.shared import log
from harness.priority import confine, set_niceness
from harness.service_process import free_port

CHAIR = "UBND-TINH"
# --hostile: one more booked endpoint, added to a copy of the roster (the province's
# 31 are all honest sites in a full run); `bench/hostile_site.py` plays it.
HOSTILE = "BENCH-HOSTILE"
TALKERS = 2  # the first non-chair participants talk louder than the rest
ADMIN_PASSWORD = "bench-admin-password"  # noqa: S105 - a throwaway service
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
# A run is spoiled when the bridge's event loop waits for a CPU (runnable, not
# running) more than this share of the time (median of the 1-s intervals).
CONTENDED_PCT = 10.0

TARGETS = {"bridge_cpu_pct_max": 40.0, "bridge_cpu_pct_aim": 30.0, "audio_loss_pct": 1.0,
           "fps_min": 14.0, "floor_switch_s": 1.0, "join_s": 2.0}


# -- participants -------------------------------------------------------------------------


def roster_order() -> list[str]:
    """The chair, then every other endpoint of configs/endpoints.yaml in roster order."""
    entries = yaml.safe_load((ROOT / "configs" / "endpoints.yaml").read_text())["endpoints"]
    codes = [e["code"] for e in entries]
    return [CHAIR] + [c for c in codes if c != CHAIR]


# -- processes ------------------------------------------------------------------------------


NICE = 0  # niceness of the load processes (--nice)
BRIDGE_NICE = 0  # niceness of the bridge (--bridge-nice)
BRIDGE_CODE = ROOT  # the checkout the bridge runs from (--bridge-code)
BRIDGE_CPUS, OTHER_CPUS = {0}, {1}  # --pin


def _die_with_parent(nice: int = 0) -> None:
    """In the child before exec: get SIGTERM when the harness dies, however it dies
    (and take the scheduling priority asked for)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    set_niceness(nice)


def _load_child() -> None:
    _die_with_parent(NICE)


def _bridge_child() -> None:
    _die_with_parent(BRIDGE_NICE)


def proc_cpu_ticks(pid: int) -> tuple[int, int] | None:
    """(utime, stime) of a process (all its threads), in clock ticks."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]), int(fields[12])


def proc_run_delay_ns(pid: int) -> int | None:
    """Time the process's main thread (the event loop) spent runnable but waiting for
    a CPU, in ns (/proc/<pid>/schedstat): how much other work held it back."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None


def proc_rss_kib(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return None


def machine_ticks() -> tuple[int, int, int]:
    """(busy, total, steal) clock ticks of all CPUs since boot, from /proc/stat; busy
    counts steal, the time the hypervisor gave this machine's CPUs to other guests."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])
    steal = values[7] if len(values) > 7 else 0
    return total - idle, total, steal


@dataclass
class Sample:
    at: float
    cpu: dict[int, tuple[int, int] | None]
    rss: dict[int, int | None]
    delay: dict[int, int | None]
    busy: int
    total: int
    steal: int


@dataclass
class Sampler:
    """Samples CPU and RSS of the given processes every `interval` seconds."""

    pids: dict[str, int]  # role -> pid ("bridge", "load0", ...)
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)

    def sample(self) -> None:
        busy, total, steal = machine_ticks()
        self.samples.append(Sample(time.time(),
                                   {p: proc_cpu_ticks(p) for p in self.pids.values()},
                                   {p: proc_rss_kib(p) for p in self.pids.values()},
                                   {p: proc_run_delay_ns(p) for p in self.pids.values()},
                                   busy, total, steal))

    async def run(self) -> None:
        next_at = time.monotonic()
        while True:
            self.sample()
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def cpu_series(self, roles: Iterable[str], start: float, end: float,
                   kernel_only: bool = False) -> list[float]:
        """% of one core used by `roles` together (user + system time, or system time
        only), per interval inside [start, end]."""
        pids = [self.pids[r] for r in roles]
        out = []
        for a, b in zip(self.samples, self.samples[1:], strict=False):
            if a.at < start - 0.01 or b.at > end + 0.01:
                continue
            used = 0
            for pid in pids:
                ta, tb = a.cpu.get(pid), b.cpu.get(pid)
                if ta is not None and tb is not None:
                    used += tb[1] - ta[1] if kernel_only else sum(tb) - sum(ta)
            out.append(100.0 * used / CLK_TCK / (b.at - a.at))
        return out

    def wait_series(self, role: str, start: float, end: float) -> list[float]:
        """% of wall time the main thread of `role` waited for a CPU, per interval."""
        pid = self.pids[role]
        out = []
        for a, b in zip(self.samples, self.samples[1:], strict=False):
            da, db = a.delay.get(pid), b.delay.get(pid)
            if a.at < start - 0.01 or b.at > end + 0.01 or da is None or db is None:
                continue
            out.append(100.0 * (db - da) / 1e9 / (b.at - a.at))
        return out

    def machine_series(self, start: float, end: float, steal: bool = False) -> list[float]:
        """% of one core the whole machine was busy (up to 100 x nproc), or with `steal`
        the part of it the hypervisor gave to other guests."""
        cores = os.cpu_count() or 1
        out = []
        for a, b in zip(self.samples, self.samples[1:], strict=False):
            if a.at < start - 0.01 or b.at > end + 0.01 or b.total == a.total:
                continue
            used = b.steal - a.steal if steal else b.busy - a.busy
            out.append(100.0 * cores * used / (b.total - a.total))
        return out

    def rss_at(self, role: str, when: float) -> int | None:
        pid = self.pids[role]
        best = min(self.samples, key=lambda s: abs(s.at - when), default=None)
        return best.rss.get(pid) if best else None

    def rss_series(self, role: str, start: float, end: float) -> list[tuple[float, int]]:
        pid = self.pids[role]
        return [(s.at, r) for s in self.samples if start <= s.at <= end
                and (r := s.rss.get(pid)) is not None]


def summary(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "mean": None, "max": None, "min": None, "n": 0}
    return {"median": round(statistics.median(values), 1),
            "mean": round(statistics.fmean(values), 1),
            "max": round(max(values), 1), "min": round(min(values), 1), "n": len(values)}


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def slope_per_minute(points: Sequence[tuple[float, int]]) -> float | None:
    """Least-squares slope of (time, value) in value units per minute."""
    if len(points) < 3:
        return None
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    den = sum((t - mean_t) ** 2 for t, _ in points)
    if den == 0:
        return None
    return 60.0 * sum((t - mean_t) * (v - mean_v) for t, v in points) / den


# -- the bridge process ------------------------------------------------------------------------


class Bridge:
    """`vcbridge serve` in its own process, and an admin HTTP client for it.

    `command` is the CLI's subcommand and its own flags (`bench/failover.py` starts
    `bridge-node` processes and an API-only `serve` this way); `name` names its log
    and data directory."""

    def __init__(self, work: Path, uvloop: bool, audio_frame_ms: int,
                 extra_env: dict[str, str] | None = None,
                 command: Sequence[str] = ("serve",), name: str = "bridge") -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = work / ("data" if name == "bridge" else f"data-{name}")
        self.log_path = work / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VCBRIDGE_")}
        env.update(
            VCBRIDGE_ICE_HOST_ADDRESSES="127.0.0.1", VCBRIDGE_ICE_SERVERS="",
            VCBRIDGE_ADMIN_PASSWORD=ADMIN_PASSWORD, VCBRIDGE_PASSWORD_TIME_COST="1",
            VCBRIDGE_PASSWORD_MEMORY_KIB="64", VCBRIDGE_MAX_PARTICIPANT_PORTS="100",
            VCBRIDGE_WARN_MINUTES="0", VCBRIDGE_EVENT_LOOP="uvloop" if uvloop else "asyncio",
            VCBRIDGE_BRIDGE_AUDIO_FRAME_MS=str(audio_frame_ms),
        )
        env.update(extra_env or {})
        argv = [sys.executable, "-m", "vcbridge.cli", *command, "--port", str(self.port),
                "--data-dir", str(self.data_dir)]
        with self.log_path.open("w") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                argv, cwd=BRIDGE_CODE, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_bridge_child)
        self.session: aiohttp.ClientSession | None = None
        self.token = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.session is not None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.session.request(method, self.base + path, json=body, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=20)) as response:
            return response.status, await response.json()

    async def mix_counters(self) -> dict[tuple[str, str], float]:
        """The bridge's `vcbridge_audio_mix_*` counters now, by (sample name, label value)
        (empty: an older bridge)."""
        assert self.session is not None
        async with self.session.get(self.base + "/metrics",
                                    timeout=aiohttp.ClientTimeout(total=20)) as response:
            text = await response.text()
        return {(sample.name, ",".join(sample.labels.values())): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.name.startswith("vcbridge_audio_mix_")}

    async def start(self, timeout: float = 60.0, login: bool = True) -> None:
        self.session = aiohttp.ClientSession()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                status, _ = await self.request("GET", "/healthz")
                if status == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bridge is not healthy after {timeout} s")
            await asyncio.sleep(0.2)
        if not login:
            return
        status, body = await self.request("POST", "/api/v1/auth/login",
                                          {"username": "admin", "password": ADMIN_PASSWORD})
        if status != 200:
            raise RuntimeError(f"admin login failed: {status} {body}")
        self.token = body["token"]

    async def agent_token(self, code: str) -> str:
        status, body = await self.request("POST", f"/api/v1/endpoints/{code}/tokens",
                                          {"label": "bench"})
        if status != 201:
            raise RuntimeError(f"token for {code} refused: {status} {body}")
        return str(body["token"])

    async def book(self, participants: list[str], start: datetime, seconds: float) -> int:
        body = {"title": f"Benchmark {len(participants)} sites", "chair": CHAIR,
                "participants": participants,
                "start": start.isoformat(timespec="seconds"),
                "end": (start + timedelta(seconds=seconds + 600)).isoformat(timespec="seconds"),
                "setup_minutes": 0}
        status, answer = await self.request("POST", "/api/v1/conferences", body)
        if status != 201:
            raise RuntimeError(f"booking refused: {status} {answer}")
        return int(answer["id"])

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait, 10)


@dataclass
class AdminEvents:
    """The admin's event stream: when the scheduler invited whom, who joined."""

    invited: dict[str, float] = field(default_factory=dict)
    joined: dict[str, float] = field(default_factory=dict)
    conference: list[tuple[float, str]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def follow(self, bridge: Bridge) -> None:
        assert bridge.session is not None
        async with bridge.session.ws_connect(
                f"{bridge.base}/api/v1/events",
                headers={"Authorization": f"Bearer {bridge.token}"}, heartbeat=20) as ws:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                now, body = time.time(), message.json()
                kind, code = body.get("type"), body.get("endpoint")
                if kind == "stream.ready":
                    self.ready.set()
                elif kind == "endpoint.invited" and code:
                    self.invited.setdefault(code, now)
                elif kind == "endpoint.joined" and code:
                    self.joined.setdefault(code, now)
                elif isinstance(kind, str) and kind.startswith("conference."):
                    self.conference.append((now, kind))


# -- load processes ------------------------------------------------------------------------------


class LoadProcess:
    """One `bench/load_sites.py` process (or `module`'s) and its JSON-line channel."""

    def __init__(self, name: str, config: dict[str, Any], work: Path,
                 module: str = "bench.load_sites") -> None:
        self.name = name
        self.module = module
        self.config = config
        self.config_path = work / f"{name}.json"
        self.config_path.write_text(json.dumps(config))
        self.stderr_path = work / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self.result: dict[str, Any] | None = None
        self.done = asyncio.Event()
        self.on_event: Callable[[dict[str, Any]], None] = lambda _e: None
        self._reader: asyncio.Task[None] | None = None

    async def start_for(self, conference_id: int,
                        on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Point the process at `conference_id` (in its config file) and start it."""
        self.config["conference_id"] = conference_id
        self.config_path.write_text(json.dumps(self.config))
        if on_event is not None:
            self.on_event = on_event
        await self.start()

    async def start(self) -> None:
        with self.stderr_path.open("w") as err:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, str(self.config_path), cwd=ROOT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                start_new_session=True, preexec_fn=_load_child,
                limit=64 * 1024 * 1024)
        self._reader = asyncio.create_task(self._read())

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                kind = event.get("event")
                if kind == "ready":
                    self.ready.set()
                elif kind == "result":
                    self.result = event
                    self.config_path.with_suffix(".result.json").write_text(line.decode())
                self.on_event(event)
        finally:
            self.done.set()

    async def send(self, command: dict[str, Any]) -> None:
        process = self.process
        if process is None or process.stdin is None or process.returncode is not None:
            return
        with contextlib.suppress(ConnectionError, BrokenPipeError):
            process.stdin.write((json.dumps(command) + "\n").encode())
            await process.stdin.drain()

    async def stop(self, timeout: float) -> None:
        """Ask for the result; kill after `timeout`."""
        await self.send({"cmd": "stop"})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), timeout)
        await self.kill()

    async def kill(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.process.wait(), 5)
        if self._reader is not None:
            self._reader.cancel()


# -- one run --------------------------------------------------------------------------------------


@dataclass
class RunOptions:
    sites: int
    seconds: float
    per_process: int
    floor_interval: float
    settle: float
    lead: float
    media_dir: Path
    work: Path
    bridge_uvloop: bool
    load_uvloop: bool
    py_spy: str | None
    join_deadline: float
    receive_path: str
    send_path: str
    bridge_audio_frame_ms: int = 20
    hostile: bool = False  # one more booked site attacks signaling (bench/hostile_site.py)
    hostile_pause: float = 0.1
    probe_health: bool = False  # time GET /healthz every 0.1 s over the steady part
    path_costs: bool = False  # probe the bridge's media path per call (bench/path_costs.py)
    pin: bool = False  # over the steady part, the bridge on CPU 0, the sites and this on CPU 1
    bridge_env: dict[str, str] = field(default_factory=dict)


async def wait_quiet(limit_pct: float, max_wait: float) -> float:
    """Wait (at most `max_wait` s) until the machine is busy less than `limit_pct` % of
    one core over 3 s; returns the last figure seen."""
    deadline = time.monotonic() + max_wait
    said = 0.0
    while True:
        b0, t0, _ = machine_ticks()
        await asyncio.sleep(3)
        b1, t1, _ = machine_ticks()
        busy = 100.0 * (os.cpu_count() or 1) * (b1 - b0) / max(1, t1 - t0)
        if busy <= limit_pct or time.monotonic() > deadline:
            return busy
        if time.monotonic() - said > 60:
            said = time.monotonic()
            log(f"machine busy {busy:.0f} % of one core before the run; waiting "
                f"(at most {deadline - said:.0f} s more)")


async def run_conference(options: RunOptions) -> dict[str, Any]:
    """One conference of `options.sites` sites; returns every figure."""
    order = roster_order()
    participants = order[:options.sites]
    if len(participants) < options.sites:
        raise ValueError(f"the roster has only {len(order)} endpoints")
    others = [c for c in participants if c != CHAIR]
    options.work.mkdir(parents=True, exist_ok=True)
    bridge_env = dict(options.bridge_env)
    if options.hostile:
        bridge_env["VCBRIDGE_ROSTER_FILE"] = str(hostile_roster(options.work))
    costs_file: Path | None = None
    if options.path_costs:
        site, costs_file = path_costs.sitecustomize(options.work)
        bridge_env["PYTHONPATH"] = str(site)
        bridge_env[path_costs.ENV_OUT] = str(costs_file)
    bridge = Bridge(options.work, options.bridge_uvloop, options.bridge_audio_frame_ms,
                    bridge_env)
    loads: list[LoadProcess] = []
    hostile: LoadProcess | None = None
    health: list[tuple[float, float, bool]] = []
    tasks: list[asyncio.Task[Any]] = []
    spy: asyncio.subprocess.Process | None = None
    sampler = Sampler({"bridge": bridge.pid})
    media_seen: dict[str, float] = {}
    all_media = asyncio.Event()
    try:
        await bridge.start()
        tasks.append(asyncio.create_task(sampler.run()))
        bridge_idle_rss = proc_rss_kib(bridge.pid)
        tokens = {code: await bridge.agent_token(code) for code in participants}
        max_seconds = (options.lead + options.join_deadline + options.settle + options.seconds
                       + 120)
        if options.hostile:
            hostile = LoadProcess("hostile", {
                "base_url": bridge.base, "conference_id": None,
                "token": await bridge.agent_token(HOSTILE), "max_seconds": max_seconds,
                "pause": options.hostile_pause}, options.work, module="bench.hostile_site")

        # Load processes: the chair alone in the first (it receives every site's
        # video: as much as 30 ordinary sites), the others dealt round-robin.
        count = max(1, math.ceil(len(others) / options.per_process))
        groups: list[list[str]] = [[CHAIR]] + [[] for _ in range(count)]
        for i, code in enumerate(others):
            groups[1 + i % count].append(code)
        for n, group in enumerate(groups):
            config = {
                "base_url": bridge.base, "conference_id": None, "chair": CHAIR,
                "media_dir": str(options.media_dir), "max_seconds": max_seconds,
                "uvloop": options.load_uvloop, "join_timeout": options.join_deadline,
                "receive_path": options.receive_path, "send_path": options.send_path,
                "mix_frame_ms": options.bridge_audio_frame_ms,
                "sites": [{"code": c, "token": tokens[c], "offset": order.index(c)}
                          for c in group],
            }
            loads.append(LoadProcess(f"load{n}", config, options.work))

        # The conference id is not known before booking, and the sites must be
        # listening before the scheduler invites them: book first, far enough
        # ahead, then start the load processes with the id.
        events = AdminEvents()
        tasks.append(asyncio.create_task(events.follow(bridge)))
        await asyncio.wait_for(events.ready.wait(), 10)
        start_at = (datetime.now(UTC) + timedelta(seconds=options.lead)).replace(
            microsecond=0) + timedelta(seconds=1)
        conference_id = await bridge.book(
            participants + ([HOSTILE] if options.hostile else []), start_at,
            options.seconds + options.join_deadline + 60)
        log(f"{options.sites} sites: conference {conference_id} opens at "
            f"{start_at.astimezone().strftime('%H:%M:%S')}; {len(loads)} load processes")

        def on_event(event: dict[str, Any]) -> None:
            if event.get("event") == "media":
                media_seen.setdefault(event["site"], event["at"])
                if len(media_seen) >= options.sites:
                    all_media.set()

        for load in loads:
            await load.start_for(conference_id, on_event)
            sampler.pids[load.name] = load.pid
        if hostile is not None:
            await hostile.start_for(conference_id)
            sampler.pids[hostile.name] = hostile.pid
        await asyncio.wait_for(asyncio.gather(
            *(p.ready.wait() for p in [*loads, *([hostile] if hostile else [])])), 60)
        if time.time() > start_at.timestamp() - 1:
            raise RuntimeError("the load processes were not listening before the start; "
                               "raise --lead")

        # The scheduler opens the room at the start and invites; the sites join.
        join_deadline = start_at.timestamp() + options.join_deadline + 5
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_media.wait(), max(1.0, join_deadline - time.time()))
        missing = sorted(set(participants) - set(media_seen))
        if missing:
            log(f"no video at {len(missing)} sites after the join deadline: {missing}")
        await asyncio.sleep(options.settle)

        if options.pin:
            # What stands for other machines (the sites, this script) stops sharing the
            # bridge's core and its caches, as in a deployment; the headline figures
            # are unpinned.
            confine(os.getpid(), OTHER_CPUS)
            confine(bridge.pid, BRIDGE_CPUS)
            for load in loads:
                confine(load.pid, OTHER_CPUS)

        # The steady part: a floor grant every floor_interval seconds.
        steady_start = time.time()
        steady_end = steady_start + options.seconds
        log(f"all joined; steady part {options.seconds:.0f} s from now")
        mix_start = await bridge.mix_counters()
        costs_start = path_costs.read(costs_file) if costs_file else None
        if options.py_spy:
            spy_out = options.work / "bridge-profile.txt"
            with options.work.joinpath("py-spy.log").open("w") as spy_log:
                spy = await asyncio.create_subprocess_exec(
                    *profile_summary.record_command(options.py_spy, bridge.pid,
                                                    options.seconds, spy_out),
                    stdout=subprocess.DEVNULL, stderr=spy_log, start_new_session=True,
                    preexec_fn=_die_with_parent)
        if options.probe_health:
            tasks.append(asyncio.create_task(probe_health(bridge, health)))
        if hostile is not None:
            # Over the steady part, so that its figures are taken under attack; the
            # rounds stop by themselves a second before its end.
            await hostile.send({"cmd": "attack", "seconds": max(1.0, options.seconds - 1)})
        rotation = others[TALKERS:] + others[:TALKERS] if len(others) > TALKERS else others
        grant_at = steady_start
        k = 0
        while rotation and grant_at < steady_end - 0.5:
            await asyncio.sleep(max(0.0, grant_at - time.time()))
            await loads[0].send({"cmd": "grant", "endpoint": rotation[k % len(rotation)]})
            k += 1
            grant_at = steady_start + k * options.floor_interval
        await asyncio.sleep(max(0.0, steady_end - time.time()))
        sampler.sample()
        rss_end_sample = proc_rss_kib(bridge.pid)
        mix_end = await bridge.mix_counters()
        costs_end = path_costs.read(costs_file) if costs_file else None

        if options.pin:  # the next run's processes start free, as this one's did
            confine(os.getpid(), set(range(os.cpu_count() or 1)))
        if hostile is not None:
            await hostile.stop(30)
        await asyncio.gather(*(load.stop(30) for load in loads))
        if spy is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(spy.wait(), 30)
        result = analyse(options, participants, bridge_idle_rss, rss_end_sample, sampler,
                         loads, events, conference_id, steady_start, steady_end)
        result["bridge_log"] = bridge_log_findings(bridge.log_path)
        result["mix"] = mix_figures(mix_start, mix_end)
        if options.path_costs:
            result["path_costs"] = path_costs.figures(costs_start, costs_end)
            if result["path_costs"]:
                log(path_costs.table(result["path_costs"]))
        if options.probe_health:
            result["healthz_ms"] = health_summary(health, steady_start, steady_end)
        if hostile is not None:
            result["hostile"] = hostile_summary(hostile, sampler, health, steady_start,
                                                steady_end)
        profile = options.work / "bridge-profile.txt"
        if options.py_spy and profile.exists():
            result["profile"] = {"file": str(profile), **profile_summary.summarise(profile)}
        return result
    finally:
        for task in tasks:
            task.cancel()
        if spy is not None and spy.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                spy.kill()
        for load in loads:
            await load.kill()
        if hostile is not None:
            await hostile.kill()
        await bridge.stop()


def mix_figures(start: dict[tuple[str, str], float], end: dict[tuple[str, str], float]
                ) -> dict[str, Any] | None:
    """The audio mix over the steady part, from the bridge's metrics: how many sites were
    mixed in its frames, and what a frame cost in encodes (None: an older bridge)."""
    delta = {key: end[key] - start.get(key, 0.0) for key in end}
    frames = {speakers: count for (name, speakers), count in delta.items()
              if name == "vcbridge_audio_mix_frames_total"}
    total = sum(frames.values())
    if not total:
        return None

    def per_frame(name: str) -> float:
        return round(delta[(f"vcbridge_audio_mix_{name}_total", "")] / total, 2)

    return {
        "frames": int(total),
        "share_by_speakers": {k: round(v / total, 3) for k, v in sorted(frames.items())},
        "encodes_per_frame": per_frame("encodes"),
        "forwarded_per_frame": per_frame("forwarded"),
        "skipped_frames": int(delta[("vcbridge_audio_mix_skipped_frames_total", "")]),
    }


def bridge_log_findings(path: Path) -> dict[str, int]:
    """Counts of telling lines in the bridge's log (its own view of trouble)."""
    patterns = {"ice_consent_expired": "Consent to send expired",
                "database_locked": "database is locked",
                "scheduler_tick_skipped": "maximum number of running instances",
                "errors": " ERROR ", "warnings": " WARNING "}
    counts = dict.fromkeys(patterns, 0)
    with contextlib.suppress(OSError), path.open(errors="replace") as log_file:
        for line in log_file:
            for key, needle in patterns.items():
                if needle in line:
                    counts[key] += 1
    return counts


def hostile_roster(work: Path) -> Path:
    """A copy of the roster with the hostile site added (the bridge's roster_file)."""
    roster = yaml.safe_load((ROOT / "configs" / "endpoints.yaml").read_text())
    roster["endpoints"].append({"code": HOSTILE, "kind": "district",
                                "name": "Điểm cầu thử tấn công (benchmark)",
                                "name_en": "Benchmark hostile site"})
    path = work / "endpoints.yaml"
    path.write_text(yaml.safe_dump(roster, allow_unicode=True))
    return path


async def probe_health(bridge: Bridge, samples: list[tuple[float, float, bool]],
                       period: float = 0.1) -> None:
    """GET /healthz every `period` s: (time, round trip ms, ok). The bridge answers on
    its event loop, so the round trip bounds the loop's stalls from above (plus the
    HTTP and `SELECT 1` costs, which a run without an attacker shows)."""
    async with aiohttp.ClientSession() as session:
        while True:
            sent, ok = time.monotonic(), False
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with session.get(bridge.base + "/healthz",
                                       timeout=aiohttp.ClientTimeout(total=30)) as response:
                    await response.read()
                    ok = response.status == 200
            took = time.monotonic() - sent
            samples.append((time.time(), 1000 * took, ok))
            await asyncio.sleep(max(0.0, period - took))


def health_summary(samples: list[tuple[float, float, bool]], start: float, end: float
                   ) -> dict[str, Any]:
    values = [ms for at, ms, _ in samples if start <= at <= end]
    return {"median": _r(percentile(values, 50), 1), "p99": _r(percentile(values, 99), 1),
            "max": _r(max(values, default=None), 1), "n": len(values),
            "over_100ms": sum(v > 100 for v in values),
            "failed": sum(not ok for at, _, ok in samples if start <= at <= end)}


def hostile_summary(hostile: LoadProcess, sampler: Sampler,
                    health: list[tuple[float, float, bool]], start: float, end: float
                    ) -> dict[str, Any]:
    """What the hostile site sent and how the bridge answered (error code -> count), and
    the slowest /healthz round trip while each kind of attack was under way."""
    result = hostile.result or {}
    during: dict[str, dict[str, float]] = {}
    for name, began, ended in result.get("timeline", []):
        figures = during.setdefault(name, {"seconds": 0.0, "healthz_max_ms": 0.0,
                                           "healthz_over_100ms": 0})
        figures["seconds"] += ended - began
        for at, ms, _ in health:
            if at - ms / 1000 < ended and at > began:  # the probe overlapped the attack
                figures["healthz_max_ms"] = round(max(figures["healthz_max_ms"], ms), 1)
                figures["healthz_over_100ms"] += ms > 100
    for figures in during.values():
        figures["seconds"] = round(figures["seconds"], 1)
    refused: dict[str, int] = {}
    for attack in result.get("attacks", {}).values():
        for code, n in attack["outcomes"].items():
            if code not in ("joined", "answered", "closed", "timeout", "send_failed"):
                refused[code] = refused.get(code, 0) + n
    return {"reported": hostile.result is not None,
            "refused": dict(sorted(refused.items(), key=lambda kv: -kv[1])),
            "answered_offers": sum(a["outcomes"].get("answered", 0)
                                   for a in result.get("attacks", {}).values()),
            "attacks": result.get("attacks"), "during": during,
            "rounds": result.get("rounds"),
            "connections": result.get("connections"),
            "messages_sent": result.get("messages_sent"),
            "mb_sent": round(result.get("bytes_sent", 0) / 1e6, 1),
            "seconds": _r(result["ended"] - result["started"], 1)
            if result.get("ended") and result.get("started") else None,
            "cpu_pct": summary(sampler.cpu_series([hostile.name], start, end))}


# -- analysis -------------------------------------------------------------------------------------


def _buckets(start: float, end: float) -> list[int]:
    """Whole seconds [b, b+1) inside [start, end]."""
    return list(range(math.ceil(start), math.floor(end)))


def analyse(options: RunOptions, participants: list[str], idle_rss: int | None,
            end_rss: int | None, sampler: Sampler, loads: list[LoadProcess],
            events: AdminEvents, conference_id: int, start: float, end: float
            ) -> dict[str, Any]:
    sites: dict[str, Any] = {}
    grants: list[dict[str, Any]] = []
    load_cpu_seconds: dict[str, float] = {}
    for load in loads:
        if load.result is None:
            continue
        sites.update(load.result["sites"])
        grants += load.result["grants"]
        load_cpu_seconds[load.name] = round(load.result["cpu_seconds"], 1)
    grants.sort(key=lambda g: g["at"])
    missing_results = [c for c in participants if c not in sites]

    # When each site held the floor (its floor slot then shows nothing).
    held: dict[str, list[tuple[float, float]]] = {}
    for i, grant in enumerate(grants):
        until = grants[i + 1]["at"] if i + 1 < len(grants) else end
        held.setdefault(grant["endpoint"], []).append((grant["at"], until + 1.0))

    buckets = _buckets(start, end)
    per_site: dict[str, Any] = {}
    fps_avgs, fps_worst_seconds, audio_losses, ts_missing_total = [], [], [], 0
    grid_avgs: list[float] = []
    joins, joins_audio, signal_times = [], [], []
    for code in participants:
        site = sites.get(code)
        if site is None:
            continue
        slot_fps: dict[str, dict[str, float]] = {}
        for name, slot in site["slots"].items():
            if name == f"grid:{HOSTILE}":
                continue  # the hostile site sends no video: not a figure of the others
            counts = {int(k): v for k, v in slot["frames"].items()}
            own = held.get(code, []) if name == "floor" else []
            used = [b for b in buckets
                    if not any(b < until and b + 1 > since for since, until in own)]
            series = [counts.get(b, 0) for b in used]
            if not series:
                continue
            slot_fps[name] = {"avg": round(sum(series) / len(series), 2),
                              "worst_second": min(series),
                              "median_second": statistics.median(series),
                              "seconds": len(series), "unknown_frames": slot["unknown"]}
        main = {k: v for k, v in slot_fps.items() if not k.startswith("grid:")}
        grid = {k: v for k, v in slot_fps.items() if k.startswith("grid:")}
        grid_avgs += [v["avg"] for v in grid.values()]
        site_avg = min((v["avg"] for v in main.values()), default=0.0)
        site_worst = min((v["worst_second"] for v in main.values()), default=0)
        fps_avgs.append(site_avg)
        fps_worst_seconds.append(site_worst)

        audio = site["audio"]
        packets = sum(audio["packets"].get(str(b), 0) for b in buckets)
        seq_lost = sum(audio["seq_lost"].get(str(b), 0) for b in buckets)
        ts_missing = sum(audio["ts_missing"].get(str(b), 0) for b in buckets)
        ts_missing_total += ts_missing
        expected = 1000 / options.bridge_audio_frame_ms * len(buckets)
        shortfall = max(0.0, 1 - packets / expected) if expected else 0.0
        seq_loss = seq_lost / (packets + seq_lost) if packets + seq_lost else 0.0
        loss = max(shortfall, seq_loss)
        audio_losses.append(100 * loss)

        join = None
        if site["invited"] and site["first_video"]:
            join = site["first_video"] - site["invited"]
            joins.append(join)
        if site["invited"] and site["first_audio"]:
            joins_audio.append(site["first_audio"] - site["invited"])
        if site["invited"] and site["joined"]:
            signal_times.append(site["joined"] - site["invited"])
        per_site[code] = {
            "fps": slot_fps if code != CHAIR else {
                **main, "grid": summary([v["avg"] for v in grid.values()])},
            "fps_avg": site_avg, "fps_worst_second": site_worst,
            "audio": {"packets_per_s": round(packets / len(buckets), 2) if buckets else None,
                      "loss_pct": round(100 * loss, 3), "seq_lost": seq_lost,
                      "mix_frames_missing": ts_missing},
            "join_s": round(join, 3) if join is not None else None,
            "sent": site["sent"], "error": site["error"],
            "closed_reason": site["closed_reason"],
        }

    # Floor switches: grant -> first frame of the new holder in each site's floor slot.
    switches: list[float] = []
    switch_misses: list[dict[str, Any]] = []
    already = 0
    for i, grant in enumerate(grants):
        holder, at = grant["endpoint"], grant["at"]
        until = grants[i + 1]["at"] if i + 1 < len(grants) else end
        for code in participants:
            site = sites.get(code)
            if code == holder or site is None or "floor" not in site["slots"]:
                continue
            changes = site["slots"]["floor"]["changes"]
            before = [s for t, s in changes if t < at]
            if before and before[-1] == holder:
                already += 1
                continue
            seen = next((t for t, s in changes if t >= at and s == holder), None)
            if seen is None or seen > until:
                switch_misses.append({"grant": i, "site": code, "holder": holder})
            else:
                switches.append(seen - at)

    # CPU and memory.
    bridge_cpu = sampler.cpu_series(["bridge"], start, end)
    load_roles = [load.name for load in loads]
    load_cpu = sampler.cpu_series(load_roles, start, end)
    machine = sampler.machine_series(start, end)
    steal = sampler.machine_series(start, end, steal=True)
    # "Other" is everything but the bridge and its load: other processes, and the time
    # the hypervisor gave this machine's CPUs to other guests (shown apart as steal).
    other = [max(0.0, m - b - lc) for m, b, lc in zip(machine, bridge_cpu, load_cpu,
                                                       strict=False)]
    rss_start, rss_end = sampler.rss_at("bridge", start), end_rss or sampler.rss_at("bridge", end)
    rss_slope = slope_per_minute(sampler.rss_series("bridge", start, end))
    # Warm-up (allocator arenas, aiortc's per-stream histories) lasts minutes; the
    # last third of a long run tells growth from warm-up.
    rss_tail_slope = slope_per_minute(
        sampler.rss_series("bridge", end - (end - start) / 3, end))
    invite_spread = (max(events.invited.values()) - min(events.invited.values())
                     if events.invited else None)

    def mib(kib: int | None) -> float | None:
        return round(kib / 1024, 1) if kib is not None else None

    fps_min = min(fps_avgs) if fps_avgs else 0.0
    loss_max = max(audio_losses) if audio_losses else 100.0
    join_max = max(joins) if len(joins) == len(participants) else None
    switch_max = max(switches) if switches else None
    bridge_summary = summary(bridge_cpu)
    result: dict[str, Any] = {
        "sites": len(participants), "conference": conference_id,
        "seconds": round(end - start, 1), "floor_grants": len(grants),
        "bridge_cpu_pct": bridge_summary,
        "bridge_cpu_kernel_pct": summary(sampler.cpu_series(["bridge"], start, end, True)),
        "load_cpu_pct": summary(load_cpu),
        "load_cpu_kernel_pct": summary(sampler.cpu_series(load_roles, start, end, True)),
        "load_cpu_pct_per_process": {r: summary(sampler.cpu_series([r], start, end))
                                     for r in load_roles},
        "load_cpu_seconds_total": load_cpu_seconds,
        "machine_busy_pct": summary(machine), "other_cpu_pct": summary(other),
        "steal_cpu_pct": summary(steal),
        "bridge_rss_mib": {"idle": mib(idle_rss), "start": mib(rss_start), "end": mib(rss_end),
                           "growth": mib(rss_end - rss_start) if rss_end and rss_start else None,
                           "slope_mib_per_min": round(rss_slope / 1024, 2)
                           if rss_slope is not None else None,
                           "slope_last_third_mib_per_min": round(rss_tail_slope / 1024, 2)
                           if rss_tail_slope is not None else None},
        "fps": {"min": round(fps_min, 2),
                "median": round(statistics.median(fps_avgs), 2) if fps_avgs else None,
                "worst_second": min(fps_worst_seconds) if fps_worst_seconds else None,
                "median_worst_second": statistics.median(fps_worst_seconds)
                if fps_worst_seconds else None,
                "chair_grid": summary(grid_avgs)},
        "audio_loss_pct": {"max": round(loss_max, 3),
                           "median": round(statistics.median(audio_losses), 3)
                           if audio_losses else None,
                           "mix_frames_missing_total": ts_missing_total},
        "floor_switch_s": {"median": _r(percentile(switches, 50)),
                           "p95": _r(percentile(switches, 95)), "max": _r(switch_max),
                           "n": len(switches), "misses": len(switch_misses),
                           "already_shown": already, "missed": switch_misses[:10]},
        "join_s": {"min": _r(min(joins, default=None)), "median": _r(percentile(joins, 50)),
                   "max": _r(max(joins, default=None)), "n": len(joins),
                   "signaling_median": _r(percentile(signal_times, 50)),
                   "first_audio_median": _r(percentile(joins_audio, 50)),
                   "invitation_spread": _r(invite_spread)},
        "missing_results": missing_results,
        "per_site": per_site,
    }
    # On a shared machine other work steals CPU from the bridge: its figures then
    # say little about the bridge (it looks like the bridge falling behind).
    waits = summary(sampler.wait_series("bridge", start, end))
    result["bridge_cpu_wait_pct"] = waits
    result["load_cpu_wait_pct"] = {r: summary(sampler.wait_series(r, start, end))["median"]
                                   for r in load_roles}
    result["bridge_wait_series"] = [round(v) for v in sampler.wait_series("bridge", start, end)]
    result["bridge_rss_series_mib"] = [round(r / 1024, 1) for t, r in
                                       sampler.rss_series("bridge", start, end)][::10]
    result["contended"] = waits["median"] is None or float(waits["median"] or 0) > CONTENDED_PCT
    result["bridge_cpu_series"] = [round(v) for v in bridge_cpu]
    result["other_cpu_series"] = [round(v) for v in other]
    result["steal_cpu_series"] = [round(v) for v in steal]
    result["targets_met"] = {
        "bridge_cpu": bridge_summary["median"] is not None
        and float(bridge_summary["median"] or 0) <= TARGETS["bridge_cpu_pct_max"],
        "bridge_cpu_aim": bridge_summary["median"] is not None
        and float(bridge_summary["median"] or 0) <= TARGETS["bridge_cpu_pct_aim"],
        "audio_loss": loss_max < TARGETS["audio_loss_pct"],
        "fps": fps_min >= TARGETS["fps_min"] and not missing_results,
        "floor_switch": switch_max is not None and switch_max < TARGETS["floor_switch_s"]
        and not switch_misses,
        "join": join_max is not None and join_max < TARGETS["join_s"],
    }
    return result


def _r(value: float | None, digits: int = 3) -> float | None:
    return round(value, digits) if value is not None else None


# -- report --------------------------------------------------------------------------------------


def table(runs: list[dict[str, Any]]) -> str:
    def f(value: Any, fmt: str = "{:.0f}") -> str:
        return "-" if value is None else fmt.format(value)

    header = ("sites  bridge CPU % med/mean/max  wait %  load CPU % med  other %  "
              "RSS MiB start>end  "
              "fps min/med (worst s)  grid fps min  audio loss % max  floor s med/max  "
              "join s med/max")
    lines = [header, "-" * len(header)]
    for r in runs:
        b, lc, o = r["bridge_cpu_pct"], r["load_cpu_pct"], r["other_cpu_pct"]
        m, fps, a = r["bridge_rss_mib"], r["fps"], r["audio_loss_pct"]
        fl, j = r["floor_switch_s"], r["join_s"]
        lines.append(
            f"{r['sites']:>5}  {f(b['median']):>6} / {f(b['mean']):>3} / {f(b['max']):>3}"
            f"          {f(r['bridge_cpu_wait_pct']['median']):>6}"
            f"  {f(lc['median']):>14}  {f(o['median']):>7}  "
            f"{f(m['start'], '{:.1f}'):>7} > {f(m['end'], '{:.1f}'):<7}  "
            f"{f(fps['min'], '{:.1f}'):>6} / {f(fps['median'], '{:.1f}'):<5} "
            f"({f(fps['worst_second'])})       "
            f"{f(fps['chair_grid']['min'], '{:.1f}'):>6}  "
            f"{f(a['max'], '{:.2f}'):>16}  "
            f"{f(fl['median'], '{:.2f}'):>6} / {f(fl['max'], '{:.2f}'):<6}  "
            f"{f(j['median'], '{:.2f}'):>5} / {f(j['max'], '{:.2f}')}")
    lines.append("targets (31 sites): bridge CPU <= 40 % (aim 30 %), audio loss < 1 %, "
                 "fps >= 14, floor < 1 s, join < 2 s, no RSS growth")
    for r in runs:
        if r["contended"]:
            lines.append(f"{r['sites']:>5} sites: CONTENDED - the bridge's event loop waited "
                         f"for a CPU {r['bridge_cpu_wait_pct']['median']} % of the time "
                         f"(median; other processes used {r['other_cpu_pct']['median']} % of "
                         f"one core, of which the hypervisor's steal "
                         f"{r['steal_cpu_pct']['median']} %): the figures are not the "
                         "bridge's own")
        unmet = [k for k, ok in r["targets_met"].items() if not ok]
        lines.append(f"{r['sites']:>5} sites: targets not met: {', '.join(unmet) or 'none'}; "
                     f"RSS growth {r['bridge_rss_mib']['growth']} MiB "
                     f"(slope {r['bridge_rss_mib']['slope_mib_per_min']} MiB/min, last third "
                     f"{r['bridge_rss_mib']['slope_last_third_mib_per_min']}); "
                     f"floor misses {r['floor_switch_s']['misses']}; "
                     f"mix frames missing {r['audio_loss_pct']['mix_frames_missing_total']}")
        mix = r.get("mix")
        if mix:
            shares = ", ".join(f"{k}: {100 * v:.0f} %"
                               for k, v in mix["share_by_speakers"].items())
            lines.append(f"{r['sites']:>5} sites: the bridge's mix frames by sites mixed "
                         f"({shares}); encodes {mix['encodes_per_frame']} and forwarded "
                         f"{mix['forwarded_per_frame']} a frame; skipped "
                         f"{mix['skipped_frames']}")
    return "\n".join(lines)


def hostile_figures(run: dict[str, Any]) -> dict[str, Any]:
    """The figures of a --hostile comparison: what the other sites received, how long
    the bridge took to answer /healthz, what the attacker got."""
    hostile = run.get("hostile") or {}
    return {"variant": run.get("variant"), "sites": run["sites"],
            "fps_min": run["fps"]["min"], "fps_median": run["fps"]["median"],
            "fps_worst_second": run["fps"]["worst_second"],
            "audio_loss_pct_max": run["audio_loss_pct"]["max"],
            "audio_loss_pct_median": run["audio_loss_pct"]["median"],
            "mix_frames_missing": run["audio_loss_pct"]["mix_frames_missing_total"],
            "healthz_ms": run.get("healthz_ms"),
            "bridge_cpu_pct_median": run["bridge_cpu_pct"]["median"],
            "bridge_cpu_wait_pct_median": run["bridge_cpu_wait_pct"]["median"],
            "contended": run["contended"], "load_average": run.get("load_average"),
            "refused": hostile.get("refused"), "answered_offers": hostile.get("answered_offers"),
            "attack_connections": hostile.get("connections"),
            "attack_mb_sent": hostile.get("mb_sent"), "during": hostile.get("during"),
            "hostile_cpu_pct_median": (hostile.get("cpu_pct") or {}).get("median"),
            "targets_met": {"fps": run["targets_met"]["fps"],
                            "audio_loss": run["targets_met"]["audio_loss"]}}


def hostile_table(rows: list[dict[str, Any]]) -> str:
    def f(value: Any, fmt: str = "{:.0f}") -> str:
        return "-" if value is None else fmt.format(value)

    header = ("sites  run       fps min/med (worst s)  audio loss % max/med  mix missing  "
              "healthz ms med/p99/max  bridge CPU %  wait %  load avg")
    lines = [header, "-" * len(header)]
    for r in rows:
        h = r["healthz_ms"] or {}
        load = r["load_average"]
        lines.append(
            f"{r['sites']:>5}  {r['variant'] or '-':<8}  "
            f"{f(r['fps_min'], '{:.1f}'):>6} / {f(r['fps_median'], '{:.1f}'):<5} "
            f"({f(r['fps_worst_second'])})    "
            f"{f(r['audio_loss_pct_max'], '{:.2f}'):>8} / "
            f"{f(r['audio_loss_pct_median'], '{:.2f}'):<8}  {r['mix_frames_missing']:>11}  "
            f"{f(h.get('median')):>6} / {f(h.get('p99')):>5} / {f(h.get('max')):<6}  "
            f"{f(r['bridge_cpu_pct_median']):>12}  {f(r['bridge_cpu_wait_pct_median']):>6}"
            f"  {f(load[0] if load else None, '{:.2f}'):>8}")
    for r in rows:
        if r["variant"] == "hostile":
            lines.append(f"{r['sites']:>5} sites, hostile: refused {r['refused']}; offers "
                         f"answered {r['answered_offers']}; {r['attack_connections']} "
                         f"connection attempts, {r['attack_mb_sent']} MB sent")
            for name, d in (r["during"] or {}).items():
                lines.append(f"{'':>7}{name:<22} {d['seconds']:>6} s   /healthz max "
                             f"{d['healthz_max_ms']:>6} ms, {d['healthz_over_100ms']} over 100 ms")
    lines.append("targets for the other sites, with the attacker: fps >= 14, audio loss < 1 %")
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem_kib = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text()
                    .splitlines() if line.startswith("MemTotal")), 0)
    import aiortc
    import av

    git: dict[str, Any] = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,  # noqa: S607
            text=True, timeout=10).stdout.strip()
        git["dirty"] = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,  # noqa: S607
            text=True, timeout=10).stdout.split("\n")[:30]
        if BRIDGE_CODE != ROOT:
            git["bridge_commit"] = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=BRIDGE_CODE,  # noqa: S607
                capture_output=True, text=True, timeout=10).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu_model": model, "mem_gib": round(mem_kib / 2**20, 1),
            "python": platform.python_version(), "aiortc": aiortc.__version__,
            "av": av.__version__, "kernel": platform.release(), "git": git}


# -- main ---------------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    counts = [int(n) for n in str(args.sites).split(",") if n.strip()]
    order = roster_order()
    if any(not 2 <= n <= len(order) for n in counts):
        raise SystemExit(f"--sites: each count must be between 2 and {len(order)}")
    talkers = [c for c in order if c != CHAIR][:TALKERS]
    log("preparing media (encoded once, then cached)")
    # A prefix of the roster order: the cache of a 31-site run serves the smaller ones.
    needed = order[:max(counts)]
    media_dir = await asyncio.to_thread(conference_media.prepare, needed, talkers,
                                        Path(args.media_dir) if args.media_dir else None,
                                        2, args.site_audio_frame_ms)
    clips = {code: conference_media.describe(media_dir, code) for code in needed}
    work_root = Path(args.out_dir) if args.out_dir else Path(
        tempfile.mkdtemp(prefix="vcbridge-bench-conf-"))
    runs = []
    try:
        # --hostile: a baseline run without the attacker first (unless --no-baseline),
        # then the same conference with it; both time /healthz.
        variants: list[bool | None] = [None]
        if args.hostile:
            variants = [True] if args.no_baseline else [False, True]
        bridge_env = ({"VCBRIDGE_SIGNALING_JOINS_PER_MINUTE": str(args.hostile_joins_per_minute)}
                      if args.hostile_joins_per_minute else {})
        # The bridge asks for the sites' frame in its answers, as it would of an agent.
        bridge_env["VCBRIDGE_BRIDGE_SITE_AUDIO_FRAME_MS"] = str(args.site_audio_frame_ms)
        for n in counts:
            for repeat in range(args.repeat):
                for hostile in variants:
                    if args.quiet_below:
                        busy = await wait_quiet(args.quiet_below, args.quiet_wait)
                        log(f"machine busy {busy:.0f} % of one core before the run")
                    suffix = {None: "", False: "-baseline", True: "-hostile"}[hostile]
                    options = RunOptions(
                        sites=n, seconds=args.seconds, per_process=args.per_process,
                        floor_interval=args.floor_interval, settle=args.settle,
                        lead=args.lead, media_dir=media_dir,
                        work=work_root / f"sites{n}-{repeat}{suffix}",
                        bridge_uvloop=not args.bridge_asyncio, load_uvloop=args.load_uvloop,
                        py_spy=args.py_spy, join_deadline=args.join_deadline,
                        receive_path=args.receive_path, send_path=args.send_path,
                        bridge_audio_frame_ms=args.bridge_audio_frame_ms,
                        hostile=bool(hostile), hostile_pause=args.hostile_pause,
                        probe_health=hostile is not None, path_costs=args.path_costs,
                        pin=args.pin, bridge_env=bridge_env)
                    result = await run_conference(options)
                    result["work_dir"] = str(options.work)
                    if hostile is not None:
                        result["variant"] = "hostile" if hostile else "baseline"
                        result["load_average"] = os.getloadavg()
                    runs.append(result)
                    log("\n" + table([result]))
    finally:
        if not args.out_dir and not args.keep:
            shutil.rmtree(work_root, ignore_errors=True)
    report: dict[str, Any] = {
        "benchmark": "conference", "machine": machine_info(), "targets": TARGETS,
        "parameters": {"seconds": args.seconds, "floor_interval": args.floor_interval,
                       "per_process": args.per_process, "bridge_uvloop": not args.bridge_asyncio,
                       "nice": args.nice, "bridge_nice": BRIDGE_NICE,
                       "py_spy": bool(args.py_spy), "path_costs": args.path_costs,
                       "pin": args.pin,
                       "load_uvloop": args.load_uvloop, "receive_path": args.receive_path,
                       "send_path": args.send_path,
                       "video": {"width": conference_media.WIDTH,
                                 "height": conference_media.HEIGHT,
                                 "fps": conference_media.FPS,
                                 "kbps_median": statistics.median(
                                     c["video_kbps"] for c in clips.values())},
                       "audio_frame_ms": args.site_audio_frame_ms,
                       "bridge_audio_frame_ms": args.bridge_audio_frame_ms, "talkers": talkers},
        "runs": runs,
    }
    if args.hostile:
        report["hostile"] = [hostile_figures(r) for r in runs]
        report["parameters"]["hostile_joins_per_minute"] = args.hostile_joins_per_minute
        report["parameters"]["hostile_pause"] = args.hostile_pause
    return report


def unbuilt_native_module(code: Path) -> str | None:
    """Why the bridge in `code` would run without one of its C modules (the bridge falls
    back to Python silently, which would measure the wrong code), or None."""
    for source in sorted((code / "bridge").glob("*.c")):
        if not any(source.parent.glob(f"{source.stem}.*.so")):
            return (f"{source} is not built; build it there first: cd {code} "
                    f"&& {sys.executable} -c 'from setuptools import setup; setup()' "
                    "build_ext --inplace")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", default="31", help="site count, or a comma list (5,10,20,31)")
    parser.add_argument("--seconds", type=float, default=60.0, help="steady part per run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per site count")
    parser.add_argument("--per-process", type=int, default=8, help="simulated sites per process")
    parser.add_argument("--floor-interval", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds between the last join and the steady part")
    parser.add_argument("--lead", type=float, default=12.0,
                        help="seconds from booking to the start: the load processes start "
                             "and listen meanwhile")
    parser.add_argument("--join-deadline", type=float, default=30.0,
                        help="give up waiting for sites' first video after this many seconds")
    parser.add_argument("--receive-path", choices=["lean", "aiortc"], default="lean",
                        help="how the simulated sites receive: RTP headers at the ICE layer "
                             "(lean, default) or aiortc's receivers with the bridge's taps")
    parser.add_argument("--send-path", choices=["lean", "aiortc"], default="lean",
                        help="how the simulated sites send: RTP packets built with struct "
                             "into aiortc's DTLS transport (lean, default) or RTCRtpSender")
    parser.add_argument("--media-dir", help="media cache (default <tmp>/vcbridge-bench-media)")
    parser.add_argument("--out-dir", help="keep logs and profiles here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--bridge-audio-frame-ms", type=int, choices=[20, 40, 60], default=20,
                        help="the Opus frame of the bridge's mixes (setting bridge_audio_frame_ms)")
    parser.add_argument("--site-audio-frame-ms", type=int, choices=[20, 60], default=20,
                        help="the Opus frame the sites send (60: as the agent sends when the "
                             "bridge's answer asks for it, setting bridge_site_audio_frame_ms)")
    parser.add_argument("--bridge-asyncio", action="store_true",
                        help="run the bridge on Python's asyncio loop (default: uvloop)")
    parser.add_argument("--load-uvloop", action="store_true",
                        help="run the load processes on uvloop (needs uvloop installed)")
    parser.add_argument("--py-spy", metavar="PATH",
                        help="record a py-spy profile of the bridge over the steady part")
    parser.add_argument("--pin", action="store_true",
                        help="over the steady part, the bridge on CPU 0 only, the sites' load "
                             "processes and this script on CPU 1 (a deployment's shape; the "
                             "targets are for unpinned runs)")
    parser.add_argument("--path-costs", action="store_true",
                        help="measure the bridge's media path per call over the steady part "
                             "(bench/path_costs.py; adds about 3 %% of a core)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of the load processes: negative (root only) gives "
                             "them priority over other work on a shared machine")
    parser.add_argument("--bridge-code", metavar="DIR",
                        help="run the bridge from this checkout (e.g. a worktree of an "
                             "older commit), the load processes from this one: before and "
                             "after under the same load")
    parser.add_argument("--bridge-nice", type=int, default=None,
                        help="niceness of the bridge (default: --nice)")
    parser.add_argument("--quiet-below", type=float, default=0.0, metavar="PCT",
                        help="before each run, wait until the machine is busy less than PCT %% "
                             "of one core")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="longest wait for --quiet-below, seconds")
    parser.add_argument("--hostile", action="store_true",
                        help="one more booked site attacks signaling over the steady part "
                             "(bench/hostile_site.py), after a baseline run without it; "
                             "both time GET /healthz every 0.1 s")
    parser.add_argument("--no-baseline", action="store_true",
                        help="with --hostile: skip the baseline run")
    parser.add_argument("--hostile-pause", type=float, default=0.1,
                        help="with --hostile: seconds between two attacks")
    parser.add_argument("--hostile-joins-per-minute", type=int, default=0, metavar="N",
                        help="the bridge's signaling_joins_per_minute for every site (default: "
                             "the setting's default, 20): raise it to let the hostile site "
                             "reconnect for every offer and measure the offers' own cost")
    args = parser.parse_args()
    global NICE, BRIDGE_NICE, BRIDGE_CODE  # read in the children's preexec functions
    NICE = args.nice
    BRIDGE_NICE = args.nice if args.bridge_nice is None else args.bridge_nice
    if args.bridge_code:
        BRIDGE_CODE = Path(args.bridge_code).resolve()
        unbuilt = unbuilt_native_module(BRIDGE_CODE)
        if unbuilt:
            log(unbuilt)
            return 2
    try:
        report = asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted; every child process was stopped")
        return 130
    log("\n" + table(report["runs"]))
    if "hostile" in report:
        log("\n" + hostile_table(report["hostile"]))
    print(json.dumps(report, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
