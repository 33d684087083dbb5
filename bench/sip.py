"""SIP room systems in a conference: what a SIP site costs the bridge and Janus, against a
WebRTC site, how long dialling takes, and the audio loss (issue 17).

One conference of `--webrtc` simulated WebRTC sites (the chair among them; the cheap
load generator of `bench/conference.py`, `bench/load_sites.py`) and `--rooms` SIP room
systems: headless baresip instances (picture from `fakevideo`, sound to `aubridge`: no
sound card, see `harness/baresip.py`) reached through a real
Janus SIP gateway, all in a network namespace the benchmark creates
(`harness/netns.py`: Janus gathers no ICE candidates on loopback). The scheduler
opens the room at the start and the bridge dials every room.

Three runs, each the same bridge set-up (`vcbridge serve`, SQLite, its own process):

1. `sip`: the `--webrtc` sites and the `--rooms` SIP rooms;
2. `webrtc`: the same conference with the SIP rooms replaced by as many WebRTC sites;
3. `base`: the `--webrtc` sites alone.

`--repeat N` runs the three N times, interleaved, and gives each per-site figure's
median: the machine's speed drifts by minutes, and a per-site figure is a difference of
two runs. The rooms and the load processes stand for machines elsewhere, so they run at
niceness 19 (`--others-nice`; their sessions too, `harness/priority.py`): on this 2-core
machine they take what the bridge and Janus leave, instead of making them wait. Ten
rooms cost about a third of a core of their own. They still share the service's two
cores, its caches, and its time slices; `--pin` goes further over the steady part: the
bridge and Janus on CPU 0 only, the rooms, the load processes and this script on CPU 1.

A site's cost is the CPU its kind adds to the `base` run, divided by `--rooms`:
for a SIP site the bridge's increase plus Janus's CPU (bridge + gateway), for a
WebRTC site the bridge's increase. Target: a SIP site at most twice a WebRTC site
with VP8 rooms. CPU is sampled every second from /proc over the steady part
(`--seconds`); the per-site costs use the mean (the CPU used over the steady part).
The rooms' own CPU (baresip) is reported apart: it is the room system's, not the
service's.

Dial to media: the room's `endpoint.invited` (the scheduler's invitation, which the
dialer turns into a call) to its `endpoint.joined` (the bridge's leg to Janus has ICE
and DTLS up, which Janus opens only once the room answered: media flows from then; this
is also when the roll call shows the room joined). Target under 2 s. The same calls as
Janus sees them are reported beside it: the first invitation to each leg's "WebRTC media
is now available" in Janus's log (stamped to the second).

Audio loss: at the WebRTC sites, the mix they receive (as in `bench/conference.py`); for
the SIP rooms, the bridge's own receive view of each room's audio
(`vcbridge_endpoint_packet_loss_ratio{side="bridge"}`, scraped every 5 s over the steady
part). The WebRTC sites' figure includes mix ticks the bridge skipped when its loop ran
late (a shortfall against 50 packets a second), so it shows a contended machine too.

The rooms' microphones (`--room-microphone`): by default each murmurs as the quiet
WebRTC sites do (`bench/conference_media.py`, about -45 dBov, played by baresip's
`aufile`), so that both runs have the same talkers, the two loud WebRTC sites, and a
site's cost is its kind's, not that of a conference where ten more sites talk at once
(three speakers mixed a frame instead of two). `tone`: each room sends a loud tone
(`ausine`), i.e. ten more talkers than the WebRTC run has.

    python bench/sip.py                       # 10 VP8 rooms + 10 WebRTC sites, 60 s each run
    python bench/sip.py --repeat 3            # the figures for the issue (about 13 minutes)
    python bench/sip.py --repeat 3 --pin      # the same, the service alone on one core
    python bench/sip.py --video h264 --rooms 2   # H.264-only rooms (transcoded at the bridge)
    python bench/sip.py --no-baseline         # the SIP run only
    python bench/sip.py --no-baseline --py-spy .venv/bin/py-spy   # + where the bridge's CPU goes

Needs root (network namespace), `janus`, `baresip-core`, `baresip-ffmpeg`. Progress and
a table on stderr; one JSON line on stdout at the end, with the load average: on a
shared machine the figures are upper bounds.
"""

from __future__ import annotations

from project_path import ROOT  # first: the project, not bench/, on sys.path

# isort: split

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench import conference, conference_media, profile_summary
from bench.conference import (
    CHAIR,
    TALKERS,
    AdminEvents,
    Bridge,
    LoadProcess,
    RunOptions,
    Sampler,
    analyse,
    machine_info,
    proc_cpu_ticks,
    roster_order,
    summary,
)
from bench.conference_media import AUDIO_SECONDS, SAMPLE_RATE, speech_like
from bench.shared import log
from harness import baresip as baresip_harness
from harness import janus as janus_harness
from harness import netns as netns_harness
from harness.baresip import Baresip, RoomConfig, free_udp_port, running_baresip
from harness.janus import Janus, running_janus
from harness.netns import Namespace
from harness.priority import confine

TARGETS = {"sip_over_webrtc_site_cost": 2.0, "dial_to_media_s": 2.0}
LOSS_SCRAPE_S = 5.0
# --pin: the service's core, and the core of what stands for other machines.
SERVICE_CPUS, OTHER_CPUS = {0}, {1}


@dataclass
class Rig:
    """The namespace, Janus and the rooms (code -> baresip)."""

    ns: Namespace
    janus: Janus
    rooms: dict[str, Baresip]


@contextlib.contextmanager
def sip_rig(work: Path, codes: list[str], video: str, microphone: Path | None,
            nice: int = 0) -> Iterator[Rig]:
    """Janus and one baresip room per code (at niceness `nice`), in a namespace; all
    stopped on exit."""
    with Namespace("sipb", net=233) as ns, running_janus(work / "janus", ns) as janus, \
            contextlib.ExitStack() as stack:
        rooms = {}
        for i, code in enumerate(codes):
            room = RoomConfig(f"room{i}", free_udp_port(), audio_codecs=("G722", "PCMU", "PCMA"),
                              video_codecs=("VP8",) if video == "vp8" else ("H264",),
                              tone_hz=300 + 40 * i, microphone=microphone, nice=nice)
            rooms[code] = stack.enter_context(running_baresip(work / f"room{i}", room, ns))
        yield Rig(ns, janus, rooms)


def murmur_wav(path: Path, seconds: int = 240) -> Path:
    """A quiet room's microphone for baresip's `aufile`: the quiet WebRTC sites' murmur,
    looped to `seconds` (longer than a run: `aufile` stops at the end of its file)."""
    mono = np.tile(speech_like(0, loud=False), seconds // AUDIO_SECONDS + 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(np.repeat(mono, 2).astype("<i2").tobytes())
    return path


def sip_roster(path: Path, rooms: dict[str, str]) -> Path:
    """The project's roster with `rooms` (code -> SIP URI) made SIP room systems."""
    raw = yaml.safe_load((ROOT / "configs" / "endpoints.yaml").read_text(encoding="utf-8"))
    for entry in raw["endpoints"]:
        if entry["code"] in rooms:
            entry["sip"] = {"uri": rooms[entry["code"]]}
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


JANUS_MEDIA = re.compile(rb"^\[(?P<at>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})\] "
                         rb"\[janus\.plugin\.sip-[^\]]*\] WebRTC media is now available", re.M)


def janus_media_times(log_path: Path, since: float) -> list[float]:
    """When Janus saw each leg's WebRTC media up (ICE and DTLS done with the bridge), from
    its log after `since` (epoch seconds). Janus stamps its log to the second only."""
    out = []
    for match in JANUS_MEDIA.finditer(log_path.read_bytes()):
        at = time.mktime(time.strptime(match["at"].decode(), "%a %b %d %H:%M:%S %Y"))
        if at >= math.floor(since):
            out.append(at)
    return out


LOSS_LINE = re.compile(
    r'^vcbridge_endpoint_packet_loss_ratio\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$', re.M)


async def scrape_loss(bridge: Bridge, codes: set[str]) -> dict[str, float]:
    """The bridge's view of each room's audio loss over the last sampling window."""
    assert bridge.session is not None
    async with bridge.session.get(bridge.base + "/metrics") as response:
        text = await response.text()
    out: dict[str, float] = {}
    for match in LOSS_LINE.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        value = float(match["value"])
        if labels.get("side") == "bridge" and labels.get("endpoint") in codes \
                and math.isfinite(value):
            out[labels["endpoint"]] = value
    return out


async def run_once(name: str, webrtc: list[str], sip: dict[str, Baresip] | None,
                   rig: Rig | None, args: argparse.Namespace, media_dir: Path,
                   work: Path) -> dict[str, Any]:
    """One conference: the `webrtc` sites in load processes, the `sip` rooms dialled."""
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    order = roster_order()
    env: dict[str, str] = {"VCBRIDGE_SIP_PROBE_INTERVAL_SECONDS": "15"}
    if sip and rig:
        env.update(
            VCBRIDGE_ROSTER_FILE=str(sip_roster(work / "endpoints.yaml",
                                                {c: r.uri for c, r in sip.items()})),
            VCBRIDGE_SIP_GATEWAY_URL=rig.janus.url,
            # Janus is behind the namespace's link: the bridge advertises its end too.
            VCBRIDGE_ICE_HOST_ADDRESSES=f"127.0.0.1,{rig.ns.here}")
    bridge = Bridge(work, uvloop=True, audio_frame_ms=20, extra_env=env)
    options = RunOptions(sites=len(webrtc), seconds=args.seconds, per_process=args.per_process,
                         floor_interval=1e9, settle=args.settle, lead=args.lead,
                         media_dir=media_dir, work=work, bridge_uvloop=True,
                         load_uvloop=False, py_spy=None, join_deadline=args.join_deadline,
                         receive_path="lean", send_path="lean")
    sampler = Sampler({"bridge": bridge.pid})
    if rig is not None and sip:
        sampler.pids["janus"] = rig.janus.process.pid
        for code, room in sip.items():
            assert room.process is not None
            sampler.pids[f"room:{code}"] = room.process.pid
    loads: list[LoadProcess] = []
    tasks: list[asyncio.Task[Any]] = []
    media_seen: dict[str, float] = {}
    all_media = asyncio.Event()
    participants = [*webrtc, *(sip or {})]
    losses: dict[str, list[float]] = {code: [] for code in sip or {}}
    try:
        await bridge.start()
        tasks.append(asyncio.create_task(sampler.run()))
        tokens = {code: await bridge.agent_token(code) for code in webrtc}
        max_seconds = args.lead + args.join_deadline + args.settle + args.seconds + 120
        others = [c for c in webrtc if c != CHAIR]
        count = max(1, math.ceil(len(others) / args.per_process))
        groups: list[list[str]] = [[CHAIR]] + [[] for _ in range(count)]
        for i, code in enumerate(others):
            groups[1 + i % count].append(code)
        for n, group in enumerate(g for g in groups if g):
            loads.append(LoadProcess(f"load{n}", {
                "base_url": bridge.base, "conference_id": None, "chair": CHAIR,
                "media_dir": str(media_dir), "max_seconds": max_seconds, "uvloop": False,
                "join_timeout": args.join_deadline, "receive_path": "lean",
                "send_path": "lean", "mix_frame_ms": 20,
                "sites": [{"code": c, "token": tokens[c], "offset": order.index(c)}
                          for c in group]}, work))
        events = AdminEvents()
        tasks.append(asyncio.create_task(events.follow(bridge)))
        await asyncio.wait_for(events.ready.wait(), 10)
        start_at = (datetime.now(UTC) + timedelta(seconds=args.lead)).replace(
            microsecond=0) + timedelta(seconds=1)
        conference_id = await bridge.book(participants, start_at,
                                          args.seconds + args.join_deadline + 60)
        log(f"{name}: {len(webrtc)} WebRTC sites + {len(sip or {})} SIP rooms, conference "
            f"{conference_id} opens at {start_at.astimezone().strftime('%H:%M:%S')}")

        def on_event(event: dict[str, Any]) -> None:
            if event.get("event") == "media":
                media_seen.setdefault(event["site"], event["at"])
                if len(media_seen) >= len(webrtc):
                    all_media.set()

        for load in loads:
            await load.start_for(conference_id, on_event)
            sampler.pids[load.name] = load.pid
        await asyncio.wait_for(asyncio.gather(*(p.ready.wait() for p in loads)), 60)
        deadline = start_at.timestamp() + args.join_deadline + 5
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_media.wait(), max(1.0, deadline - time.time()))
        while sip and time.time() < deadline:
            if set(sip) <= set(events.joined):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(args.settle)
        if args.pin:
            confine(os.getpid(), OTHER_CPUS)
            for role, pid in sampler.pids.items():
                confine(pid, SERVICE_CPUS if role in ("bridge", "janus") else OTHER_CPUS)
        steady_start = time.time()
        steady_end = steady_start + args.seconds
        log(f"{name}: joined {len(set(participants) & set(events.joined))}"
            f"/{len(participants)}; steady part {args.seconds:.0f} s")
        spy: asyncio.subprocess.Process | None = None
        if args.py_spy and sip:
            with (work / "py-spy.log").open("w") as spy_log:
                spy = await asyncio.create_subprocess_exec(
                    *profile_summary.record_command(args.py_spy, bridge.pid, args.seconds,
                                                    work / "bridge-profile.txt"),
                    stdout=subprocess.DEVNULL, stderr=spy_log)
        while time.time() < steady_end:
            await asyncio.sleep(min(LOSS_SCRAPE_S, max(0.0, steady_end - time.time())))
            if sip:
                with contextlib.suppress(Exception):
                    for code, value in (await scrape_loss(bridge, set(sip))).items():
                        losses[code].append(value)
        sampler.sample()
        if args.pin:  # the next run's processes start free, as this one's did
            confine(os.getpid(), set(range(os.cpu_count() or 1)))
        if spy is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(spy.wait(), 30)
        await asyncio.gather(*(load.stop(30) for load in loads))
        result = analyse(options, webrtc, None, None, sampler, loads, events,
                         conference_id, steady_start, steady_end)
        keep = ("bridge_cpu_pct", "load_cpu_pct", "machine_busy_pct", "other_cpu_pct",
                "bridge_cpu_wait_pct", "contended", "fps", "audio_loss_pct", "join_s",
                "missing_results")
        out: dict[str, Any] = {k: result[k] for k in keep}
        out.update(run=name, webrtc_sites=len(webrtc), sip_rooms=len(sip or {}),
                   load_average=[round(v, 2) for v in os.getloadavg()])
        if sip:
            invited_at = start_at.timestamp()
            dial = {c: events.joined[c] - events.invited.get(c, invited_at)
                    for c in sip if c in events.joined}
            first_invite = min((events.invited[c] for c in sip if c in events.invited),
                               default=invited_at)
            assert rig is not None
            janus_up = [t - first_invite for t in janus_media_times(rig.janus.log, first_invite)]
            janus_cpu = summary(sampler.cpu_series(["janus"], steady_start, steady_end))
            rooms_cpu = summary(sampler.cpu_series([f"room:{c}" for c in sip], steady_start,
                                                   steady_end))
            site_loss = {c: statistics.fmean(v) * 100 for c, v in losses.items() if v}
            out.update(
                janus_cpu_pct=janus_cpu, rooms_cpu_pct=rooms_cpu,
                sip_joined=len(dial), sip_not_joined=sorted(set(sip) - set(dial)),
                dial_s=sorted(round(v, 3) for v in dial.values()),
                dial_to_media_s={"median": round(statistics.median(dial.values()), 3)
                                 if dial else None,
                                 "max": round(max(dial.values()), 3) if dial else None,
                                 "invited_seen": sum(c in events.invited for c in sip)},
                # The same calls seen at Janus: its legs' media up (1 s resolution).
                invite_to_janus_media_s={
                    "median": round(statistics.median(janus_up), 1) if janus_up else None,
                    "max": round(max(janus_up), 1) if janus_up else None,
                    "legs": len(janus_up)},
                sip_audio_loss_pct={"max": round(max(site_loss.values()), 3)
                                    if site_loss else None,
                                    "median": round(statistics.median(site_loss.values()), 3)
                                    if site_loss else None, "rooms_measured": len(site_loss)},
                janus_alive=proc_cpu_ticks(sampler.pids["janus"]) is not None)
            profile = work / "bridge-profile.txt"
            if profile.exists():
                out["profile"] = {"file": str(profile),
                                  **profile_summary.summarise(profile, top=12)}
        return out
    finally:
        for task in tasks:
            task.cancel()
        for load in loads:
            await load.kill()
        await bridge.stop()


def _mean(run: dict[str, Any] | None, key: str) -> float | None:
    # The mean of the 1-s samples is the CPU used over the steady part; their median
    # moves in whole percents (/proc counts 100 ticks a second), a tenth of a point
    # per site once divided by ten.
    if run is None:
        return None
    value = (run.get(key) or {}).get("mean")
    return float(value) if value is not None else None


def costs(runs: dict[str, dict[str, Any]], rooms: int) -> dict[str, Any]:
    """Per-site CPU (% of one core) of each kind, from the three runs' mean CPU."""
    sip_bridge, base = _mean(runs.get("sip"), "bridge_cpu_pct"), _mean(
        runs.get("base"), "bridge_cpu_pct")
    janus = _mean(runs.get("sip"), "janus_cpu_pct")
    webrtc = _mean(runs.get("webrtc"), "bridge_cpu_pct")
    out: dict[str, Any] = {"janus_per_sip_site": round(janus / rooms, 2)
                           if janus is not None else None}
    if base is not None and sip_bridge is not None:
        out["bridge_per_sip_site"] = round((sip_bridge - base) / rooms, 2)
        if janus is not None:
            out["bridge_and_janus_per_sip_site"] = round((sip_bridge - base + janus) / rooms, 2)
    if base is not None and webrtc is not None:
        out["bridge_per_webrtc_site"] = round((webrtc - base) / rooms, 2)
    per_sip, per_webrtc = out.get("bridge_and_janus_per_sip_site"), out.get(
        "bridge_per_webrtc_site")
    if per_sip is not None and per_webrtc:
        out["sip_over_webrtc"] = round(per_sip / per_webrtc, 2) if per_webrtc > 0 else None
    return out


def median_costs(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """Each per-site figure's median over the repeats."""
    keys = {key for cost in repeats for key in cost}
    out: dict[str, Any] = {}
    for key in sorted(keys):
        values = [cost[key] for cost in repeats if cost.get(key) is not None]
        out[key] = round(statistics.median(values), 2) if values else None
    if len(repeats) > 1:
        out["per_repeat"] = repeats
    return out


def table(runs: dict[str, dict[str, Any]], cost: dict[str, Any]) -> str:
    """A short human table of the runs."""
    lines = [f"{'run':7} {'sites':>9} {'bridge%':>8} {'janus%':>7} {'rooms%':>7} "
             f"{'loss%max':>8} {'dial med/max s':>15} {'load':>5}"]
    for name, run in runs.items():
        dial = run.get("dial_to_media_s", {})
        lines.append(
            f"{name:7} {run['webrtc_sites']:>4}+{run['sip_rooms']:<4} "
            f"{run['bridge_cpu_pct']['median']!s:>8} "
            f"{(run.get('janus_cpu_pct') or {}).get('median', '-')!s:>7} "
            f"{(run.get('rooms_cpu_pct') or {}).get('median', '-')!s:>7} "
            f"{run['audio_loss_pct']['max']!s:>8} "
            f"{dial.get('median', '-')!s:>7}/{dial.get('max', '-')!s:<7} "
            f"{run['load_average'][0]:>5}")
    lines.append("per site: " + json.dumps(cost))
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    order = roster_order()
    total = args.webrtc + args.rooms
    if args.webrtc < 2 or total > len(order):
        raise SystemExit(f"--webrtc at least 2, --webrtc + --rooms at most {len(order)}")
    webrtc, sip_codes = order[:args.webrtc], order[args.webrtc:total]
    talkers = [c for c in order if c != CHAIR][:TALKERS]
    log("preparing media (encoded once, then cached)")
    media_dir = await asyncio.to_thread(conference_media.prepare, order[:total], talkers,
                                        Path(args.media_dir) if args.media_dir else None)
    work = Path(args.out_dir) if args.out_dir else Path(tempfile.mkdtemp(prefix="vcbridge-sip-"))
    conference.NICE = args.others_nice  # the load processes' (read in their preexec)
    repeats: list[dict[str, dict[str, Any]]] = []
    repeat_costs: list[dict[str, Any]] = []
    try:
        microphone = None if args.room_microphone == "tone" else murmur_wav(work / "murmur.wav")
        for n in range(args.repeat):
            # Interleaved, so that a drift in the machine's speed falls on every kind.
            runs: dict[str, dict[str, Any]] = {}
            out = work / f"repeat{n}"
            with sip_rig(out / "rig", sip_codes, args.video, microphone,
                         args.others_nice) as rig:
                runs["sip"] = await run_once("sip", webrtc, rig.rooms, rig, args, media_dir,
                                             out / "sip")
            if not args.no_baseline:
                runs["webrtc"] = await run_once("webrtc", order[:total], None, None, args,
                                                media_dir, out / "webrtc")
                runs["base"] = await run_once("base", webrtc, None, None, args, media_dir,
                                              out / "base")
            repeats.append(runs)
            repeat_costs.append(costs(runs, args.rooms))
            log("\n" + table(runs, repeat_costs[-1]))
    finally:
        if not args.out_dir and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    cost = median_costs(repeat_costs)
    dials = [v for runs in repeats for v in runs["sip"].get("dial_s", [])]
    dial = {"median": round(statistics.median(dials), 3) if dials else None,
            "max": round(max(dials), 3) if dials else None, "calls": len(dials)}
    targets_met = {
        "cost": cost.get("sip_over_webrtc") is not None
        and cost["sip_over_webrtc"] <= TARGETS["sip_over_webrtc_site_cost"],
        "dial_to_media": dial["max"] is not None and dial["max"] < TARGETS["dial_to_media_s"]
        and all(runs["sip"].get("sip_joined") == args.rooms for runs in repeats),
    }
    log(f"median of {len(repeats)}: per site {json.dumps(cost)}; dial {json.dumps(dial)}")
    return {"benchmark": "sip", "machine": machine_info(),
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "parameters": {"rooms": args.rooms, "webrtc": args.webrtc, "video": args.video,
                           "seconds": args.seconds, "repeat": args.repeat,
                           "others_nice": args.others_nice, "pin": args.pin,
                           "room_audio": "G722",
                           "room_microphone": args.room_microphone,
                           "room_video": "320x240 10 fps fakevideo"},
            "targets": TARGETS, "targets_met": targets_met, "per_site_cpu_pct": cost,
            "dial_to_media_s": dial, "repeats": repeats}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=10, help="SIP room systems (baresip)")
    parser.add_argument("--webrtc", type=int, default=10,
                        help="simulated WebRTC sites, the chair among them")
    parser.add_argument("--video", choices=["vp8", "h264"], default="vp8",
                        help="the rooms' video: VP8 (forwarded) or H.264 only (transcoded)")
    parser.add_argument("--seconds", type=float, default=60.0, help="steady part per run")
    parser.add_argument("--room-microphone", choices=["murmur", "tone"], default="murmur",
                        help="what the rooms send: a quiet room's murmur, or a loud tone")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the three kinds this many times, interleaved; the "
                             "per-site costs are the medians")
    parser.add_argument("--others-nice", type=int, default=19,
                        help="niceness of the rooms and the load processes, which stand "
                             "for machines elsewhere (0: compete with the service)")
    parser.add_argument("--pin", action="store_true",
                        help="from the steady part on, the service (bridge, Janus) on CPU "
                             "0 only, the rooms and load processes (and this script) on CPU "
                             "1: what stands for other machines no longer shares the "
                             "service's core")
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--lead", type=float, default=12.0)
    parser.add_argument("--join-deadline", type=float, default=30.0)
    parser.add_argument("--per-process", type=int, default=8)
    parser.add_argument("--no-baseline", action="store_true",
                        help="the SIP run only (no per-site comparison)")
    parser.add_argument("--media-dir", help="media cache (default <tmp>/vcbridge-bench-media)")
    parser.add_argument("--out-dir", help="keep logs here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--py-spy", metavar="PATH",
                        help="record a py-spy profile of the bridge over the SIP run's "
                             "steady part (kept with --keep / --out-dir)")
    args = parser.parse_args()
    for missing in (netns_harness.missing(), janus_harness.missing(),
                    baresip_harness.missing()):
        if missing:
            log(f"cannot run: {missing}")
            return 2
    try:
        report = asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted; every child process was stopped")
        return 130
    print(json.dumps(report, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
