"""Where a bridge process spends its CPU: a summary of a py-spy raw profile.

`bench/conference.py --py-spy .venv/bin/py-spy` records the bridge over the
steady part of a run (`py-spy record --format raw`: one line per distinct
stack, root first, frames separated by ";", then the sample count) and puts
this summary in its report. By hand:

    .venv/bin/python -m bench.profile_summary /path/to/bridge-profile.txt

Two views:
- `self`: each sample goes to the first category found walking its stack from
  the innermost frame outwards (SRTP, RTP parse/serialise, VP8 pack(), the
  audio mixer, asyncio's own code...);
- `inclusive`: the share of samples under a few entry points (the receive
  path, each sender's loop, the audio tick, signalling).
Samples are CPU time only (py-spy without --idle).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# (category, substring of a frame "function (file:line)"), most specific first.
SELF_RULES: list[tuple[str, str]] = [
    ("srtp protect/unprotect", "pylibsrtp"),
    ("rtp/rtcp parse+serialise", "aiortc/rtp.py"),
    ("vp8 pack()", "aiortc/codecs/vpx.py"),
    ("opus pack()", "aiortc/codecs/opus.py"),
    ("audio mixer (opus decode/encode, mix)", "bridge/audio_mixer.py"),
    ("audio mixer (opus decode/encode, mix)", "bridge/opus_codec.py"),
    ("active speaker", "bridge/active_speaker.py"),
    ("audio engine", "bridge/audio_engine.py"),
    ("video forwarding (bridge)", "bridge/video_router.py"),
    ("video forwarding (bridge)", "bridge/outbound_track.py"),
    ("receive taps (bridge)", "bridge/media_tap.py"),
    ("jitter buffer", "aiortc/jitterbuffer.py"),
    ("remb estimator", "aiortc/rate.py"),
    ("rtp receiver (other)", "aiortc/rtcrtpreceiver.py"),
    ("rtp sender (other)", "aiortc/rtcrtpsender.py"),
    ("dtls transport: dispatch", "aiortc/rtcdtlstransport.py"),
    ("ice / udp (aioice)", "aioice/"),
    ("signalling, sdp, peer connection", "aiortc/"),
    ("database", "sqlalchemy/"),
    ("database", "aiosqlite/"),
    ("http / websocket", "aiohttp/"),
    ("event emitter", "pyee/"),
    ("scheduler", "apscheduler/"),
    ("logging", "logging/"),
    ("asyncio loop", "asyncio/"),
    ("asyncio loop", "selectors.py"),
    ("bridge (other)", "bridge/"),
    ("vcbridge / scheduler", "vcbridge/"),
    ("vcbridge / scheduler", "scheduler/"),
]

# Entry points for the inclusive view: (label, regex on a frame).
INCLUSIVE_RULES: list[tuple[str, str]] = [
    ("receive: datagram -> dtls/srtp -> rtp handlers",
     r"(^|\.)_recv_next \(.*aiortc/rtcdtlstransport"),
    ("send: RTCRtpSender._run_rtp (pack, rtp, srtp, udp)",
     r"(^|\.)_run_rtp \(.*aiortc/rtcrtpsender"),
    ("rtcp: senders' and receivers' report loops", r"(^|\.)_run_rtcp \(.*aiortc/"),
    ("audio tick (rank, mix, push)", r"(^|\.)_tick \(.*bridge/audio_engine"),
    ("audio receive tap (level, payload)", r"(^|\.)on_packet \(.*bridge/audio_engine"),
    ("video frame fan-out (VideoSource.on_frame)", r"(^|\.)on_frame \(.*bridge/video_router"),
    ("srtp (all)", r"pylibsrtp"),
    ("udp sendto", r"(^|\.)sendto \(.*asyncio/|(^|\.)_send_rtp \(.*aiortc/rtcdtlstransport"),
    ("database", r"sqlalchemy/|aiosqlite/"),
    ("asyncio run_once (all)", r"(^|\.)_run_once \(.*asyncio/"),
]

def _frames(stack: str) -> list[str]:
    return [f.strip() for f in stack.split(";") if f.strip()]


def summarise(path: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares (%) of the samples in a py-spy raw profile."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    inclusive_rules = [(label, re.compile(pattern)) for label, pattern in INCLUSIVE_RULES]
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = _frames(stack)
        category = "other"
        for frame in reversed(frames):
            match = next((c for c, needle in SELF_RULES if needle in frame), None)
            if match is not None:
                category = match
                break
        self_counts[category] += count
        if frames:
            leaf[frames[-1]] += count
        for label, pattern in inclusive_rules:
            if any(pattern.search(frame) for frame in frames):
                inclusive[label] += count

    def share(counter: Counter[str]) -> dict[str, float]:
        return {k: round(100.0 * v / total, 1) for k, v in counter.most_common(top)} \
            if total else {}

    return {"samples": total, "self_pct": share(self_counts),
            "inclusive_pct": share(inclusive), "top_leaf_frames_pct": share(leaf)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", help="py-spy record --format raw output")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(json.dumps(summarise(Path(args.profile), args.top), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
