"""Where a bridge process spends its CPU: a summary of a py-spy raw profile.

`bench/conference.py --py-spy .venv/bin/py-spy` records the bridge over the
steady part of a run (`py-spy record --format raw`: one line per distinct
stack, root first, frames separated by ";", then the sample count) and puts
this summary in its report. By hand:

    .venv/bin/python -m bench.profile_summary /path/to/bridge-profile.txt

Each sample goes to the first category found walking its stack from the
innermost frame outwards (SRTP protect or unprotect, RTP parse or serialise,
VP8 pack(), the audio mixer, asyncio's own code...), and each category to a
path: receiving a packet, sending a packet, the audio tick, the event loop's
own scheduling, the database (scheduler and event bus), the rest.

Record with `--native` (the benches do): the C frames show the system calls, and
the Python frames called from uvloop's C code are found. Without it, py-spy 0.4
on Python 3.11 gave only `Runner.run` for 45 % of a bridge's samples, the Python
code of uvloop's callbacks among them, which an earlier reading of this summary
took for the event loop's native code (docs/performance.md, "Issue 16, fourth
round"). `--native` stops the process for each sample, so a profiled run's own
figures (loss, CPU) are not the benchmark's.

Samples are CPU time only (py-spy without --idle). Left out as idle: the
event loop in `epoll_wait`, and a worker thread (the thread pool's, aiosqlite's)
blocked on its queue, which py-spy cannot always tell from running.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

IDLE_LEAVES = ("EpollSelector.select (selectors.py", "epoll_pwait (", "epoll_wait (")
# A worker thread waiting on its queue: its innermost Python frame is the wait.
IDLE_WORKERS = ("_worker (concurrent/futures/thread.py", "_connection_worker_thread (aiosqlite/")

# Native innermost frames (`--native`), before the Python rules: the system calls.
NATIVE_LEAF_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("udp send (syscall)", ("sendmsg (", "sendto (", "sendmmsg (")),
    ("udp receive (syscall)", ("recvmsg (", "recvfrom (", "recvmmsg (")),
]

# (category, substring of a frame "function (file:line)"), checked per frame from
# the innermost outwards; within a frame, the first matching rule wins.
SELF_RULES: list[tuple[str, str]] = [
    ("srtp protect (send)", "Session.protect"),
    ("srtp unprotect (receive)", "Session.unprotect"),
    ("udp sendto (syscall + asyncio)", "_SelectorDatagramTransport.sendto"),
    ("udp recvfrom (syscall + asyncio)", "_SelectorDatagramTransport._read_ready"),
    ("rtp parse (receive)", "RtpPacket.parse"),
    ("rtp parse, tapped audio (lean_rtp, receive)", "bridge/lean_rtp.py"),
    ("rtp serialise (send)", "RtpPacket.serialize"),
    ("rtp header extensions", "HeaderExtensionsMap"),
    ("rtcp", "aiortc/rtp.py"),
    ("vp8 pack() (send)", "Vp8Encoder.pack"),
    ("vp8 pack() (send)", "Vp8Encoder._packetize"),
    ("vp8 depayload (receive)", "aiortc/codecs/vpx.py"),
    ("vp8 depayload (receive)", "aiortc/codecs/__init__.py"),
    ("opus pack() (send)", "aiortc/codecs/opus.py"),
    ("audio mixer: opus encode", "OpusEncoder.encode"),
    ("audio mixer: opus decode", "OpusDecoder"),
    ("audio mixer: mix", "bridge/audio_mixer.py"),
    ("audio mixer: mix", "bridge/opus_codec.py"),
    ("active speaker", "bridge/active_speaker.py"),
    ("audio engine", "bridge/audio_engine.py"),
    ("video forwarding (bridge)", "bridge/video_router.py"),
    ("native send: srtp, sendmsg (send)", "RtpForwarder._send_native"),
    ("rtp forwarder: header, sendto (send)", "bridge/rtp_forwarder.py"),
    ("datagram tap: by callback (receive)", "bridge/datagram_tap.py"),
    ("vp8 frame assembly (receive)", "bridge/vp8_assembler.py"),
    ("video ingest: stats, nack, remb (receive)", "VideoIngest."),
    ("receive taps (bridge)", "bridge/media_tap.py"),
    ("jitter buffer (receive)", "aiortc/jitterbuffer.py"),
    ("remb estimator (receive)", "aiortc/rate.py"),
    ("rtp receiver, other (receive)", "aiortc/rtcrtpreceiver.py"),
    ("rtp sender, other (send)", "aiortc/rtcrtpsender.py"),
    ("dtls transport: receive dispatch", "RTCDtlsTransport._recv_next"),
    ("dtls transport: receive dispatch", "RTCDtlsTransport._handle_rtp_data"),
    ("dtls transport: receive dispatch", "RTCDtlsTransport.__run"),
    ("dtls transport: send", "RTCDtlsTransport._send_rtp"),
    ("dtls transport, other", "aiortc/rtcdtlstransport.py"),
    ("aioice: send", "Connection.send"),
    ("aioice: send", "StunProtocol.send_data"),
    ("aioice: receive", "datagram_received"),
    ("aioice: receive", "Connection.recv"),
    ("aioice, other (consent, stun)", "aioice/"),
    ("aiortc, other (clock, stats, sdp)", "aiortc/"),
    ("database", "sqlalchemy/"),
    ("database", "aiosqlite/"),
    ("http / websocket", "aiohttp/"),
    ("event emitter", "pyee/"),
    ("scheduler", "apscheduler/"),
    ("logging", "logging/"),
    ("asyncio queues (aioice -> dtls hand-off)", "asyncio/queues.py"),
    # uvloop runs in C under Runner.run: its epoll, recvfrom and callback dispatch.
    ("event loop's native code (uvloop)", "Runner.run (asyncio/runners.py"),
    ("event loop's native code (uvloop)", "(loop.c"),
    ("asyncio scheduling (tasks, futures, timers)", "asyncio/"),
    ("sip audio: g.711/g.722 decode, level, resampling, encode", "bridge/sip/audio_codecs.py"),
    ("sip leg, other", "bridge/sip/"),
    ("bridge, other", "bridge/"),
    ("vcbridge / scheduler", "vcbridge/"),
    ("vcbridge / scheduler", "scheduler/"),
]

# Category -> path. Categories not listed are "other".
PATHS: dict[str, str] = {
    "srtp unprotect (receive)": "receive",
    "srtp (stack cut short)": "send or receive (srtp, stack cut short)",
    "udp recvfrom (syscall + asyncio)": "receive",
    "udp receive (syscall)": "receive",
    "udp send (syscall)": "send",
    "rtp parse (receive)": "receive",
    "rtp parse, tapped audio (lean_rtp, receive)": "receive",
    "vp8 depayload (receive)": "receive",
    "jitter buffer (receive)": "receive",
    "remb estimator (receive)": "receive",
    "rtp receiver, other (receive)": "receive",
    "dtls transport: receive dispatch": "receive",
    "aioice: receive": "receive",
    "asyncio queues (aioice -> dtls hand-off)": "receive",
    "receive taps (bridge)": "receive",
    "vp8 frame assembly (receive)": "receive",
    "video ingest: stats, nack, remb (receive)": "receive",
    "video forwarding (bridge)": "receive",
    "srtp protect (send)": "send",
    "native send: srtp, sendmsg (send)": "send",
    "rtp forwarder: header, sendto (send)": "send",
    "datagram tap: by callback (receive)": "receive",
    "udp sendto (syscall + asyncio)": "send",
    "rtp serialise (send)": "send",
    "rtp header extensions": "send",
    "vp8 pack() (send)": "send",
    "opus pack() (send)": "send",
    "rtp sender, other (send)": "send",
    "dtls transport: send": "send",
    "aioice: send": "send",
    "audio mixer: opus encode": "audio tick",
    "audio mixer: opus decode": "audio tick",
    "audio mixer: mix": "audio tick",
    "active speaker": "audio tick",
    "audio engine": "audio tick",
    "asyncio scheduling (tasks, futures, timers)": "event loop scheduling",
    "event loop's native code (uvloop)": "event loop scheduling",
    "sip audio: g.711/g.722 decode, level, resampling, encode": "sip audio",
    "database": "database (scheduler tick, event bus)",
    "scheduler": "database (scheduler tick, event bus)",
    "vcbridge / scheduler": "database (scheduler tick, event bus)",
}


def record_command(py_spy: str, pid: int, seconds: float, out: Path) -> list[str]:
    """The benches' py-spy command: `seconds` of process `pid`, native frames, raw."""
    return [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
            "--rate", "25", "--format", "raw", "--native", "-o", str(out)]


def _frames(stack: str) -> list[str]:
    return [f.strip() for f in stack.split(";") if f.strip()]


def _idle(frames: list[str]) -> bool:
    """The event loop waiting for I/O, or a worker thread waiting for work."""
    if not frames:
        return False
    if frames[-1].startswith(IDLE_LEAVES):
        return True
    python = [f for f in frames if ".py:" in f]
    return bool(python) and python[-1].startswith(IDLE_WORKERS) and ".py:" not in frames[-1]


def summarise(path: Path, top: int = 25) -> dict[str, Any]:
    """Shares (%) of the non-idle samples of a py-spy raw profile, by category and path."""
    categories: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        if _idle(frames):
            idle += count
            continue
        total += count
        category = "other"
        if frames and "pylibsrtp" in frames[-1]:
            # Session.__process is shared: its caller says which way.
            category = ("srtp protect (send)" if any("Session.protect" in f for f in frames)
                        else "srtp unprotect (receive)"
                        if any("Session.unprotect" in f for f in frames)
                        else "srtp (stack cut short)")
            frames_to_check: list[str] = []
        else:
            frames_to_check = frames
        native = next((c for c, leaves in NATIVE_LEAF_RULES
                       if frames and frames[-1].startswith(leaves)), None)
        if native is not None:
            category, frames_to_check = native, []
        for frame in reversed(frames_to_check):
            match = next((c for c, needle in SELF_RULES if needle in frame), None)
            if match is not None:
                category = match
                break
        categories[category] += count
        if frames:
            leaf[frames[-1]] += count
    paths: Counter[str] = Counter()
    for category, count in categories.items():
        paths[PATHS.get(category, "other")] += count

    def share(counter: Counter[str], n: int) -> dict[str, float]:
        return {k: round(100.0 * v / total, 1) for k, v in counter.most_common(n)} \
            if total else {}

    return {"samples": total, "idle_samples_dropped": idle,
            "paths_pct": share(paths, len(paths)), "categories_pct": share(categories, top),
            "top_leaf_frames_pct": share(leaf, 15)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", help="py-spy record --format raw output")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(json.dumps(summarise(Path(args.profile), args.top), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
