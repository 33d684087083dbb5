"""Where the bridge's CPU goes, measured per call: a probe loaded into the bridge process.

py-spy's native sampling (`--py-spy`) stops the process for every sample and
puts a third of a 31-site bridge's samples in `sendmsg`, where /proc's system
time and `perf` put the whole kernel at 12-18 % (docs/performance.md, "Issue 16,
7 December (afternoon)"). This probe measures instead: each function of the
media path below is wrapped, and the CPU time of the calling thread
(`time.thread_time_ns`) is summed per function with its calls. Nested
functions are counted in their callers too (`video_ingest` includes the
fan-out sends its frames cause), so the shares do not add up; the report
gives each path's own calls, time per call and share of the process's CPU.
The garbage collector's passes are timed too (`gc.callbacks`).

`bench/conference.py --path-costs` loads it into the bridge with a
`sitecustomize` module on the bridge's `PYTHONPATH` (nothing in the service
knows of it) and reads the totals at the start and end of the steady part.
Each probed call costs about 2 µs more (two clock reads), about 3 % of a core
at 31 sites: a probed run's own CPU figure is not the benchmark's.

Functions an older bridge (`--bridge-code`) does not have are left out."""

from __future__ import annotations

import gc
import importlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# (module, class or "" for a module-level function, function, name in the report)
PROBES: tuple[tuple[str, str, str, str], ...] = (
    # Wrapped before bridge.datagram_tap is imported (which wraps it in turn), so this is
    # only what the callback path leaves to aioice and aiortc: RTCP, STUN, DTLS.
    ("aioice.ice", "StunProtocol", "datagram_received", "rtcp, stun in (aioice)"),
    ("bridge.datagram_tap", "", "_receive_srtp", "srtp datagram in"),
    # The tap's path of a bridge before the receive path in C (up to d83bba4), for
    # `--bridge-code` comparisons; today's has `_read_tapped` instead.
    ("bridge.datagram_tap", "", "_deliver_tapped", "tapped rtp in"),
    ("bridge.datagram_tap", "", "_read_tapped", "tapped rtp read (srtp, parse)"),
    ("bridge.media_tap", "VideoIngest", "receive", "video ingest"),
    ("bridge.media_tap", "VideoIngest", "_feed_estimator", "remb estimator"),
    ("bridge.video_router", "VideoSource", "on_frame", "video frame fan-out"),
    ("bridge.audio_engine", "AudioEngine", "_receive", "audio in (engine)"),
    ("bridge.active_speaker", "ActiveSpeakerDetector", "update", "active speaker"),
    ("bridge.audio_engine", "AudioEngine", "_tick", "audio tick"),
    ("bridge.audio_mixer", "AudioMixer", "mix", "mix"),
    ("bridge.opus_codec", "OpusEncoder", "encode", "opus encode"),
    ("bridge.opus_codec", "OpusDecoder", "decode", "opus decode"),
    ("bridge.rtp_forwarder", "RtpForwarder", "push", "audio send"),
    ("bridge.rtp_forwarder", "RtpForwarder", "send_chunks", "rtp send (all)"),
    ("bridge.rtp_forwarder", "RtpForwarder", "_send_native", "native send (frame)"),
)
ENV_OUT = "BENCH_PATH_COSTS_FILE"  # where the probe writes its totals


def install(out: Path, interval: float = 1.0) -> list[str]:
    """Wrap every probe this bridge has; a daemon thread writes the totals to `out`
    every `interval` seconds. Returns the report names of the probes installed."""
    totals: dict[str, list[int]] = {}  # name -> [nanoseconds, calls]
    installed = []
    for module_name, owner_name, function, name in PROBES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        owner: Any = getattr(module, owner_name) if owner_name else module
        original = getattr(owner, function, None)
        if original is None:
            continue
        totals[name] = [0, 0]
        setattr(owner, function, _timed(original, totals[name]))
        installed.append(name)

    # The cyclic garbage collector's passes, timed the same way (`gc.callbacks`).
    collector = totals["garbage collector"] = [0, 0]
    started: list[int] = []

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.thread_time_ns()]
        elif started:
            collector[0] += time.thread_time_ns() - started[0]
            collector[1] += 1

    gc.callbacks.append(on_gc)
    installed.append("garbage collector")

    def write() -> None:
        while True:
            time.sleep(interval)
            snapshot = {"at": time.time(), "process_ns": time.process_time_ns(),
                        "paths": {k: list(v) for k, v in list(totals.items())}}
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(snapshot))
            os.replace(tmp, out)

    threading.Thread(target=write, name="path-costs", daemon=True).start()
    return installed


def _timed(original: Callable[..., Any], total: list[int]) -> Callable[..., Any]:
    clock = time.thread_time_ns

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return original(*args, **kwargs)
        finally:
            total[0] += clock() - start
            total[1] += 1

    return timed


def sitecustomize(work: Path) -> tuple[Path, Path]:
    """A directory with a `sitecustomize.py` that installs this probe in the process
    that starts with it on its `PYTHONPATH`, and the file the totals go to."""
    site = work / "path-costs-site"
    site.mkdir(parents=True, exist_ok=True)
    out = work / "path-costs.json"
    # Loaded by file path, so that a bridge run from another checkout keeps its own
    # packages first on sys.path.
    site.joinpath("sitecustomize.py").write_text(
        "import importlib.util, os, pathlib\n"
        f"_spec = importlib.util.spec_from_file_location('_path_costs', {str(__file__)!r})\n"
        "_probe = importlib.util.module_from_spec(_spec)\n"
        "_spec.loader.exec_module(_probe)\n"
        f"_probe.install(pathlib.Path(os.environ[{ENV_OUT!r}]))\n")
    return site, out


def read(out: Path) -> dict[str, Any] | None:
    """The probe's latest totals (None before its first write)."""
    try:
        data: dict[str, Any] = json.loads(out.read_text())
    except (OSError, ValueError):
        return None
    return data


def figures(start: dict[str, Any] | None, end: dict[str, Any] | None) -> dict[str, Any] | None:
    """Per path between two readings: ms of CPU a second, calls a second, µs a call, and
    share of the process's CPU."""
    if start is None or end is None or end["at"] <= start["at"]:
        return None
    seconds = end["at"] - start["at"]
    process_ns = end["process_ns"] - start["process_ns"]
    paths = {}
    for name, (ns, calls) in end["paths"].items():
        ns0, calls0 = start["paths"].get(name, (0, 0))
        spent, count = ns - ns0, calls - calls0
        paths[name] = {
            "ms_per_s": round(spent / 1e6 / seconds, 1),
            "calls_per_s": round(count / seconds),
            "us_per_call": round(spent / count / 1e3, 1) if count else None,
            "pct_of_process": round(100 * spent / process_ns, 1) if process_ns else None,
        }
    return {"seconds": round(seconds, 1),
            "process_cpu_pct": round(100 * process_ns / 1e9 / seconds, 1),
            "paths": paths}


def table(result: dict[str, Any]) -> str:
    """The figures as a text table, largest first."""
    rows = sorted(result["paths"].items(), key=lambda item: -item[1]["ms_per_s"])
    lines = [f"path costs over {result['seconds']} s (process {result['process_cpu_pct']} % "
             "of a core; nested paths are counted in their callers too):",
             f"  {'path':22s} {'ms/s':>7s} {'% proc':>7s} {'calls/s':>8s} {'µs/call':>8s}"]
    for name, row in rows:
        per_call = "-" if row["us_per_call"] is None else f"{row['us_per_call']:.1f}"
        lines.append(f"  {name:22s} {row['ms_per_s']:7.1f} {row['pct_of_process'] or 0:7.1f} "
                     f"{row['calls_per_s']:8d} {per_call:>8s}")
    return "\n".join(lines)
