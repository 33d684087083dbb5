"""Failover benchmark: a bridge node dies under a 31-site conference; how soon does
every site have media again, and is the room's state kept?

Issue 15's scenario, with real processes on one PostgreSQL database:

1. A scratch PostgreSQL database (`--postgres`, default the test server's).
   One API process (`vcbridge serve` with `VCBRIDGE_ROLES=api,scheduler`: the
   API, the event stream and the scheduler's leader) and two bridge nodes
   (`vcbridge bridge-node --node-id node-a|node-b`), each its own process on
   loopback, advertising its own `http://127.0.0.1:<port>`.
2. The cheap load generator of `bench/conference.py` (`bench/load_sites.py`,
   pre-encoded 640x360 15 fps VP8 and 20 ms Opus, counted without decoding)
   plays 31 sites in a few processes, each following its event stream on the
   API process and joining the node its conference is placed on (`bridge.url`
   of its invitation; a node's `redirect` is followed). One conference of the
   31 sites starts a few seconds after booking; the scheduler places its room
   on one node: "node A" below is whichever holds it.
3. Once every site receives video, the chair gives the floor to a site and
   mutes two others. At `--kill-after` seconds (30) from the moment every site
   had media, node A is killed with SIGKILL.
4. Each site's signaling to node A breaks at once; the site asks the API
   process where the room is and redials; the scheduler declares node A dead
   (no heartbeat for `node_dead_after_seconds`) and places the room on node B
   (`conference.room_placed`), which restores its state.

Reported (table on stderr, one JSON line on stdout at the end):
- time from the kill to the first complete video frame and to the first audio
  packet again at each site: median and max, video and audio separately;
- audio seconds lost per site (last audio packet before the kill to the first
  after it): median and max;
- whether the floor holder, the queue, the mutes and the lock after the move
  are the ones before the kill, at every site;
- CPU (% of one core, median over a window) of each node and of the API
  process before the kill and after the move, and of the load processes;
- when the API process saw `conference.room_placed` for the move.
Targets: every site has media again within 10 s of the kill, median under 5 s;
no state lost.

`--compare-split` (alone, or with the failover run: `--compare-split --failover`)
measures what the split into processes costs: the same 31-site conference
(floor changing every 10 s, as `bench/conference.py`) for `--seconds`, once on
one all-in-one `vcbridge serve` and once on an API process with one bridge
node, both on PostgreSQL, with the CPU of every vcbridge process counted.

    .venv/bin/python bench/failover.py                    # the failover run
    .venv/bin/python bench/failover.py --compare-split    # all-in-one vs split

The nodes run on loopback in this machine's network namespace, not in
namespaces of their own (as `bench/rejoin.py` does for one site): killing a
process is what is measured, and the sites' media must reach both nodes.
Every child is killed at the end, on Ctrl-C and on errors too.
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
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import conference_media
from bench.conference import (
    CHAIR,
    TALKERS,
    AdminEvents,
    Bridge,
    LoadProcess,
    Sampler,
    machine_info,
    roster_order,
)
from bench.conference import summary as cpu_summary
from bench.shared import log, scratch_postgres

POSTGRES_URL = os.environ.get("VCBRIDGE_TEST_POSTGRES_URL",
                              "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
TARGETS = {"media_again_max_s": 10.0, "media_again_median_s": 5.0}
MUTED = 2  # sites the chair mutes before the kill


@dataclass
class Options:
    sites: int
    per_process: int
    kill_after: float
    settle: float
    after: float
    lead: float
    join_deadline: float
    media_dir: Path
    work: Path
    postgres: str
    uvloop: bool
    node_dead_after: float | None


def common_env(database_url: str, options: Options) -> dict[str, str]:
    env = {"VCBRIDGE_DATABASE_URL": database_url, "VCBRIDGE_LEADER_POLL_SECONDS": "1"}
    if options.node_dead_after is not None:
        env["VCBRIDGE_NODE_DEAD_AFTER_SECONDS"] = str(options.node_dead_after)
    return env


def api_process(work: Path, env: dict[str, str], options: Options) -> Bridge:
    """The controller: API, event stream and scheduler, no bridge."""
    return Bridge(work, options.uvloop, 20, {**env, "VCBRIDGE_ROLES": "api,scheduler"},
                  command=("serve",), name="api")


def node_process(work: Path, env: dict[str, str], options: Options, node_id: str) -> Bridge:
    """A bridge node (its advertised URL: its own loopback address and port)."""
    return Bridge(work, options.uvloop, 20, env,
                  command=("bridge-node", "--node-id", node_id), name=node_id)


def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def groups_of(participants: list[str], per_process: int) -> list[list[str]]:
    """The chair alone in the first load process (it receives every site's video), the
    others dealt round-robin, as `bench/conference.py` does."""
    others = [c for c in participants if c != CHAIR]
    count = max(1, math.ceil(len(others) / per_process))
    groups: list[list[str]] = [[CHAIR]] + [[] for _ in range(count)]
    for i, code in enumerate(others):
        groups[1 + i % count].append(code)
    return groups


async def start_conference(api: Bridge, options: Options, participants: list[str],
                           order: list[str], seconds: float, sampler: Sampler,
                           follow_placement: bool
                           ) -> tuple[int, list[LoadProcess], AdminEvents, dict[str, float],
                                      asyncio.Event, list[asyncio.Task[Any]], list[str]]:
    """Book the conference, start the load processes, wait for video at every site."""
    tokens = {code: await api.agent_token(code) for code in participants}
    max_seconds = options.lead + options.join_deadline + seconds + 180
    loads = []
    for n, group in enumerate(groups_of(participants, options.per_process)):
        config = {
            "base_url": api.base, "conference_id": None, "chair": CHAIR,
            "media_dir": str(options.media_dir), "max_seconds": max_seconds,
            "uvloop": False, "join_timeout": options.join_deadline,
            "follow_placement": follow_placement,
            "sites": [{"code": c, "token": tokens[c], "offset": order.index(c)} for c in group],
        }
        loads.append(LoadProcess(f"load{n}", config, options.work))
    events = AdminEvents()
    tasks = [asyncio.create_task(events.follow(api))]
    await asyncio.wait_for(events.ready.wait(), 10)
    start_at = (datetime.now(UTC) + timedelta(seconds=options.lead)).replace(
        microsecond=0) + timedelta(seconds=1)
    conference_id = await api.book(participants, start_at, seconds + options.join_deadline + 120)
    log(f"conference {conference_id} of {len(participants)} sites opens at "
        f"{start_at.astimezone().strftime('%H:%M:%S')}; {len(loads)} load processes")
    media_seen: dict[str, float] = {}
    rejoined: dict[str, float] = {}
    all_media = asyncio.Event()
    all_rejoined = asyncio.Event()

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") == "media":
            media_seen.setdefault(event["site"], event["at"])
            if len(media_seen) >= len(participants):
                all_media.set()
        elif event.get("event") == "rejoined":
            rejoined.setdefault(event["site"], event["at"])
            if len(rejoined) >= len(participants):
                all_rejoined.set()

    for load in loads:
        await load.start_for(conference_id, on_event)
        sampler.pids[load.name] = load.pid
    await asyncio.wait_for(asyncio.gather(*(p.ready.wait() for p in loads)), 60)
    if time.time() > start_at.timestamp() - 1:
        raise RuntimeError("the load processes were not listening before the start; "
                           "raise --lead")
    deadline = start_at.timestamp() + options.join_deadline + 5
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_media.wait(), max(1.0, deadline - time.time()))
    missing = sorted(set(participants) - set(media_seen))
    if missing:
        log(f"no video at {len(missing)} sites after the join deadline: {missing}")
    return conference_id, loads, events, rejoined, all_rejoined, tasks, missing


def chair_fps(sites: dict[str, dict[str, Any]], start: float, end: float
              ) -> dict[str, float | None]:
    """The chair's picture as the other sites received it over [start, end]: frames a
    second, median and minimum over the sites (whole seconds inside the window)."""
    seconds = range(math.ceil(start), math.floor(end))
    rates = []
    for code, site in sites.items():
        slot = (site.get("slots") or {}).get("chair")
        if code == CHAIR or not slot or not seconds:
            continue
        frames = slot.get("frames") or {}
        rates.append(sum(frames.get(str(t), 0) for t in seconds) / len(seconds))
    return {"median": median(rates), "min": _r(min(rates)) if rates else None}


def cpu_window(sampler: Sampler, role: str, start: float, end: float) -> dict[str, Any]:
    """% of one core `role` used over [start, end], and how much of the time its event
    loop waited for a CPU (`waited_pct`: above 10 % the machine was contended and the
    figure is what the process got, not what it needed)."""
    figures = cpu_summary(sampler.cpu_series([role], start, end))
    waits = sampler.wait_series(role, start, end)
    figures["waited_pct"] = round(statistics.median(waits), 1) if waits else None
    return figures


def states_equal(before: dict[str, Any] | None, after: dict[str, Any] | None) -> bool:
    if not before or not after:
        return False
    return (before.get("holder") == after.get("holder")
            and sorted(before.get("muted") or []) == sorted(after.get("muted") or [])
            and list(before.get("queue") or []) == list(after.get("queue") or [])
            and bool(before.get("locked")) == bool(after.get("locked")))


async def run_failover(options: Options) -> dict[str, Any]:
    """The failover run: 31 sites, node A killed; every figure."""
    order = roster_order()
    participants = order[:options.sites]
    options.work.mkdir(parents=True, exist_ok=True)
    async with scratch_postgres(options.postgres) as (database_url, pg_version):
        env = common_env(database_url, options)
        api = api_process(options.work, env, options)
        processes = [api]
        loads: list[LoadProcess] = []
        tasks: list[asyncio.Task[Any]] = []
        try:
            await api.start()  # first: it migrates the scratch database
            nodes = {node_id: node_process(options.work, env, options, node_id)
                     for node_id in ("node-a", "node-b")}
            processes += nodes.values()
            await asyncio.gather(*(n.start(login=False) for n in nodes.values()))
            sampler = Sampler({"api": api.pid, **{n: p.pid for n, p in nodes.items()}})
            tasks.append(asyncio.create_task(sampler.run()))
            await asyncio.sleep(2)  # both nodes heartbeat: both are candidates
            conference_id, loads, events, rejoined, all_rejoined, more, missing = (
                await start_conference(api, options, participants, order,
                                       options.kill_after + options.after + 60, sampler,
                                       follow_placement=True))
            tasks += more
            if missing:
                raise RuntimeError(f"no video at {missing} before the kill: no failover run")
            media_all = time.time()
            status, conference = await api.request("GET", f"/api/v1/conferences/{conference_id}")
            bridge = conference.get("bridge") if status == 200 else None
            if not isinstance(bridge, dict) or not bridge.get("url"):
                raise RuntimeError(f"the conference is not placed on a node: {conference}")
            by_url = {p.base: name for name, p in nodes.items()}
            node_a = by_url.get(str(bridge["url"]).rstrip("/"))
            if node_a is None:
                raise RuntimeError(f"placed on an unknown node: {bridge}")
            node_b = next(n for n in nodes if n != node_a)
            log(f"every site has media; the room is on {node_a}; killing it in "
                f"{options.kill_after:.0f} s")

            # The state that must survive: a floor holder and two muted sites.
            others = [c for c in participants if c != CHAIR]
            holder = others[TALKERS % len(others)]
            muted = [c for c in others if c != holder][:MUTED]
            # Sent twice (both idempotent): a command sent while the chair's connection
            # is being replaced (a node declared dead under load) would be lost.
            kill_at = media_all + options.kill_after
            for send_at in (media_all + 2, kill_at - 8):
                await asyncio.sleep(max(0.0, send_at - time.time()))
                await loads[0].send({"cmd": "grant", "endpoint": holder})
                for code in muted:
                    await loads[0].send({"cmd": "mute", "endpoint": code, "muted": True})
            await asyncio.sleep(max(0.0, kill_at - time.time()))
            # The node holding the room now: on a starved machine a node can miss its
            # heartbeats, be declared dead and lose the room before the kill.
            status, conference = await api.request("GET", f"/api/v1/conferences/{conference_id}")
            now_on = by_url.get(str((conference.get("bridge") or {}).get("url", "")).rstrip("/"))
            if now_on is not None and now_on != node_a:
                log(f"the room moved to {now_on} before the kill (a node declared dead): "
                    f"killing {now_on}")
                node_a, node_b = now_on, node_a
            sampler.sample()
            nodes[node_a].process.send_signal(signal.SIGKILL)
            killed = time.time()
            await asyncio.to_thread(nodes[node_a].process.wait, 10)
            for load in loads:
                await load.send({"cmd": "killed", "at": killed})
            log(f"killed {node_a}; waiting for the sites to come back")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_rejoined.wait(), 60)
            back = time.time()
            await asyncio.sleep(options.settle)
            after_start = time.time()
            await asyncio.sleep(options.after)
            after_end = time.time()
            sampler.sample()
            await asyncio.gather(*(load.stop(30) for load in loads))
            result = analyse_failover(
                participants, loads, sampler, events, killed, back, media_all, after_start,
                after_end, node_a, node_b, holder, muted, options)
            result["postgres"] = pg_version
            result["rejoined_sites"] = len(rejoined)
            return result
        finally:
            for task in tasks:
                task.cancel()
            for load in loads:
                await load.kill()
            for process in processes:
                await process.stop()


def analyse_failover(participants: list[str], loads: list[LoadProcess], sampler: Sampler,
                     events: AdminEvents, killed: float, back: float, media_all: float,
                     after_start: float, after_end: float, node_a: str, node_b: str,
                     holder: str, muted: list[str], options: Options) -> dict[str, Any]:
    sites: dict[str, dict[str, Any]] = {}
    for load in loads:
        if load.result is None:
            raise RuntimeError(f"{load.name} gave no result (see {load.stderr_path})")
        sites.update(load.result["sites"])
    video_again, audio_again, audio_lost = [], [], []
    per_site: dict[str, dict[str, Any]] = {}
    no_video, no_audio, state_lost = [], [], []
    for code in participants:
        site = sites[code]
        video = site["video_again"] - killed if site.get("video_again") else None
        audio = site["audio_again"] - killed if site.get("audio_again") else None
        lost = (site["audio_again"] - site["audio_before_kill"]
                if site.get("audio_again") and site.get("audio_before_kill") else None)
        if video is None:
            no_video.append(code)
        else:
            video_again.append(video)
        if audio is None:
            no_audio.append(code)
        else:
            audio_again.append(audio)
        if lost is not None:
            audio_lost.append(lost)
        kept = states_equal(site.get("state_at_kill"), site.get("last_state"))
        if not kept:
            state_lost.append(code)
        per_site[code] = {"video_again_s": _r(video), "audio_again_s": _r(audio),
                          "audio_lost_s": _r(lost), "state_kept": kept,
                          "rejoins": len(site.get("rejoins") or []),
                          "redirects": site.get("redirects", 0)}
    chair = sites[CHAIR]
    before, after = chair.get("state_at_kill") or {}, chair.get("last_state") or {}
    before_window = (max(media_all, killed - 20), killed - 0.5)
    after_window = (after_start, after_end)
    fps = {"before": chair_fps(sites, *before_window), "after": chair_fps(sites, *after_window)}
    placed_after = [round(at - killed, 3) for at, kind in events.conference
                    if kind == "conference.room_placed" and at > killed]
    # Placements before the kill beyond the first: moves after a node's false death.
    moves_before = sum(1 for at, kind in events.conference
                       if kind == "conference.room_placed" and at <= killed) - 1
    cpu = {
        role: {"before": cpu_window(sampler, role, *before_window),
               "after": cpu_window(sampler, role, *after_window)}
        for role in ("api", node_a, node_b)
    }
    cpu[node_a]["after"] = None  # killed
    loads_cpu = {load.name: cpu_window(sampler, load.name, *before_window) for load in loads}
    every = len(video_again) == len(participants) and len(audio_again) == len(participants)
    # The clients' part: from the move (the first conference.room_placed after the kill)
    # to media again; absent when the room had moved before the kill (a false death).
    move = placed_after[0] if placed_after else None
    after_move = ({"video_median": median([v - move for v in video_again]),
                   "video_max": _r(max(video_again) - move) if video_again else None,
                   "audio_median": median([a - move for a in audio_again]),
                   "audio_max": _r(max(audio_again) - move) if audio_again else None}
                  if move is not None and move < min(video_again + audio_again, default=0)
                  else None)
    return {
        "sites": len(participants), "node_a": node_a, "node_b": node_b,
        "kill_after_s": options.kill_after,
        "video_again_s": {"median": median(video_again),
                          "max": _r(max(video_again)) if video_again else None,
                          "missing": no_video},
        "audio_again_s": {"median": median(audio_again),
                          "max": _r(max(audio_again)) if audio_again else None,
                          "missing": no_audio},
        "audio_lost_s_per_site": {"median": median(audio_lost),
                                  "max": _r(max(audio_lost)) if audio_lost else None},
        "room_placed_after_kill_s": placed_after,
        "moves_before_kill": max(0, moves_before),
        "media_again_after_the_move_s": after_move,
        "state": {"holder_set": holder, "muted_set": muted,
                  "before": before, "after": after,
                  "floor_survived": bool(before) and before.get("holder") == after.get("holder")
                  == holder,
                  "mutes_survived": bool(before) and sorted(after.get("muted") or [])
                  == sorted(before.get("muted") or []) and set(muted) <= set(
                      after.get("muted") or []),
                  "sites_with_state_changed": state_lost},
        "all_back_s": _r(back - killed),
        "chair_video_fps_at_sites": fps,
        "cpu_pct_of_a_core": cpu, "load_processes_cpu_before": loads_cpu,
        "targets_met": every and bool(video_again) and max(video_again + audio_again)
        <= TARGETS["media_again_max_s"]
        and (median(video_again + audio_again) or 99) < TARGETS["media_again_median_s"]
        and not state_lost,
        "per_site": per_site,
    }


async def run_split_comparison(options: Options, seconds: float, floor_interval: float
                               ) -> dict[str, Any]:
    """The same conference on one all-in-one process, then on an API process and a node."""
    order = roster_order()
    participants = order[:options.sites]
    results: dict[str, Any] = {}
    for variant in ("all_in_one", "split"):
        work = options.work / variant
        work.mkdir(parents=True, exist_ok=True)
        async with scratch_postgres(options.postgres) as (database_url, _version):
            env = common_env(database_url, options)
            loads: list[LoadProcess] = []
            tasks: list[asyncio.Task[Any]] = []
            if variant == "all_in_one":
                api = Bridge(work, options.uvloop, 20, env, name="serve")
                processes = {"serve": api}
            else:
                api = api_process(work, env, options)
                processes = {"api": api}
            try:
                await api.start()
                if variant == "split":
                    node = node_process(work, env, options, "node-a")
                    processes["node-a"] = node
                    await node.start(login=False)
                    await asyncio.sleep(2)
                sampler = Sampler({name: p.pid for name, p in processes.items()})
                tasks.append(asyncio.create_task(sampler.run()))
                _cid, loads, _events, _rejoined, _all, more, missing = await start_conference(
                    api, replace(options, work=work), participants, order, seconds + 60,
                    sampler, follow_placement=variant == "split")
                tasks += more
                await asyncio.sleep(options.settle)
                start = time.time()
                others = [c for c in participants if c != CHAIR]
                k = 0
                while time.time() < start + seconds - 0.5:
                    await loads[0].send({"cmd": "grant", "endpoint": others[k % len(others)]})
                    k += 1
                    await asyncio.sleep(max(0.0, start + k * floor_interval - time.time()))
                end = time.time()
                sampler.sample()
                per_process = {name: cpu_window(sampler, name, start, end)
                               for name in processes}
                total = cpu_summary(sampler.cpu_series(list(processes), start, end))
                results[variant] = {"cpu_pct_of_a_core": per_process, "vcbridge_total": total,
                                    "load_processes": {
                                        load.name: cpu_window(sampler, load.name, start, end)
                                        for load in loads},
                                    "sites_without_video": missing,
                                    "loadavg_1min": os.getloadavg()[0]}
                await asyncio.gather(*(load.stop(30) for load in loads))
            finally:
                for task in tasks:
                    task.cancel()
                for load in loads:
                    await load.kill()
                for process in processes.values():
                    await process.stop()
    one = results["all_in_one"]["vcbridge_total"]["median"]
    split = results["split"]["vcbridge_total"]["median"]
    results["split_minus_all_in_one_pct"] = (round(split - one, 1)
                                             if one is not None and split is not None else None)
    results["seconds"] = seconds
    return results


def _r(value: float | None, digits: int = 3) -> float | None:
    return round(value, digits) if value is not None else None


def table(result: dict[str, Any]) -> str:
    lines = []
    if "failover" in result:
        f = result["failover"]
        cpu = f["cpu_pct_of_a_core"]
        lines += [
            f"failover: {f['sites']} sites, {f['node_a']} killed after {f['kill_after_s']:.0f} s",
            f"  video again: median {f['video_again_s']['median']} s, max "
            f"{f['video_again_s']['max']} s, missing {f['video_again_s']['missing']}",
            f"  audio again: median {f['audio_again_s']['median']} s, max "
            f"{f['audio_again_s']['max']} s, missing {f['audio_again_s']['missing']}",
            f"  audio lost per site: median {f['audio_lost_s_per_site']['median']} s, max "
            f"{f['audio_lost_s_per_site']['max']} s",
            f"  room placed again after {f['room_placed_after_kill_s']} s; media again after "
            f"the move {f['media_again_after_the_move_s']}",
            f"  floor survived {f['state']['floor_survived']}, mutes survived "
            f"{f['state']['mutes_survived']}, sites with another state "
            f"{f['state']['sites_with_state_changed']}",
        ]
        for role, windows in cpu.items():
            before = (windows["before"] or {}).get("median")
            after = (windows["after"] or {}).get("median") if windows["after"] else "killed"
            lines.append(f"  CPU {role}: before {before} %, after {after} %")
    if "split" in result:
        s = result["split"]
        lines.append(f"split comparison ({s['seconds']:.0f} s, % of one core, median): "
                     f"all-in-one {s['all_in_one']['vcbridge_total']['median']} "
                     f"{s['all_in_one']['cpu_pct_of_a_core']}; split "
                     f"{s['split']['vcbridge_total']['median']} "
                     f"{s['split']['cpu_pct_of_a_core']}; difference "
                     f"{s['split_minus_all_in_one_pct']}")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    order = roster_order()
    if not 2 <= args.sites <= len(order):
        raise SystemExit(f"--sites must be between 2 and {len(order)}")
    talkers = [c for c in order if c != CHAIR][:TALKERS]
    log("preparing media (encoded once, then cached)")
    media_dir = await asyncio.to_thread(conference_media.prepare, order[:args.sites], talkers,
                                        Path(args.media_dir) if args.media_dir else None)
    work = Path(args.out_dir) if args.out_dir else Path(
        tempfile.mkdtemp(prefix="vcbridge-bench-failover-"))
    options = Options(sites=args.sites, per_process=args.per_process,
                      kill_after=args.kill_after, settle=args.settle, after=args.after,
                      lead=args.lead, join_deadline=args.join_deadline, media_dir=media_dir,
                      work=work, postgres=args.postgres, uvloop=not args.asyncio,
                      node_dead_after=args.node_dead_after)
    report: dict[str, Any] = {"benchmark": "failover", "machine": machine_info(),
                              "targets": TARGETS, "work_dir": str(work)}
    try:
        if args.failover or not args.compare_split:
            report["failover"] = await run_failover(options)
            report["failover"]["loadavg"] = os.getloadavg()
        if args.compare_split:
            options.work = work / "compare"
            report["split"] = await run_split_comparison(options, args.seconds,
                                                         args.floor_interval)
            report["split"]["loadavg"] = os.getloadavg()
    finally:
        if not args.out_dir and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=31)
    parser.add_argument("--per-process", type=int, default=8, help="simulated sites per process")
    parser.add_argument("--kill-after", type=float, default=30.0,
                        help="seconds from 'every site has media' to the kill of node A")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds after every site rejoined before the 'after' CPU window")
    parser.add_argument("--after", type=float, default=20.0, help="the 'after' CPU window (s)")
    parser.add_argument("--lead", type=float, default=12.0,
                        help="seconds from booking to the conference's start")
    parser.add_argument("--join-deadline", type=float, default=30.0)
    parser.add_argument("--node-dead-after", type=float, default=None,
                        help="node_dead_after_seconds of the processes (default: theirs)")
    parser.add_argument("--compare-split", action="store_true",
                        help="measure all-in-one against API process + bridge node")
    parser.add_argument("--failover", action="store_true",
                        help="with --compare-split: run the failover part too")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="--compare-split: the measured part of each conference")
    parser.add_argument("--floor-interval", type=float, default=10.0)
    parser.add_argument("--postgres", default=POSTGRES_URL,
                        help="a PostgreSQL server's URL (a scratch database is made there)")
    parser.add_argument("--asyncio", action="store_true", help="Python's loop, not uvloop")
    parser.add_argument("--media-dir", help="cache of the encoded media")
    parser.add_argument("--out-dir", help="keep logs and results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    args = parser.parse_args()
    try:
        report = asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 130
    log("\n" + table(report))
    sys.stdout.write(json.dumps(report, default=str) + "\n")
    return 0


if __name__ == "__main__":
    assert ROOT.exists()
    sys.exit(main())
