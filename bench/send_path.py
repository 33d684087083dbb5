"""What sending one frame to one site costs the forwarder, in a loop on its own: the
Python path against the native one (`bridge/rtp_send_native.c`).

    .venv/bin/python bench/send_path.py [--frames 20000] [--repeat 5]

The forwarder's own code (`RtpForwarder._send_python` and `_send_native`) sends real
SRTP-protected VP8-sized frames (four packets, equal but the last, as VP8 is cut) and
Opus-sized audio packets over UDP to a socket on loopback that never reads (the kernel
drops what overflows its buffer; the sender never blocks). CPU time of this process
(user and system) a frame, median of `--repeat` rounds; one JSON line at the end.
In the bridge the same code costs more (cold caches): about twice this for the native
path, 3-5 times for Python (docs/performance.md)."""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pylibsrtp

from bench.shared import log, print_native_against_python
from bridge import rtp_forwarder, srtp_calls

VIDEO_CHUNKS = [os.urandom(1296)] * 3 + [os.urandom(700)]  # a 4.6 KB frame: ~500 kbit/s
AUDIO_CHUNKS = [os.urandom(80)]  # a 20 ms Opus frame at ~32 kbit/s


def forwarder(receiver: socket.socket, sender: socket.socket) -> Any:
    """A forwarder on a connected stream to `receiver`: the state `send_chunks` sets up
    from a live connection, set here without one."""
    policy = pylibsrtp.Policy(key=os.urandom(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                              srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    policy.allow_repeat_tx = True  # as aiortc's: the loop reuses sequence numbers
    session = pylibsrtp.Session(policy)
    out: Any = rtp_forwarder.RtpForwarder.__new__(rtp_forwarder.RtpForwarder)
    out._mid_element, out._abs_id = bytes([(1 << 4) | 0]) + b"0", 3
    out._prepare_extension()
    out._payload_type, out._ssrc, out._segmented, out.native_sends = 96, 0x1234, True, 0
    out._srtp, out._protect = session, srtp_calls.calls(session).native_protect

    class Pair:
        remote_addr = receiver.getsockname()

    out._pair, out._send = Pair(), sender.sendto
    out._native = (None, sender.fileno(), rtp_forwarder.pack_sockaddr(*Pair.remote_addr))
    return out


def per_frame_us(send: Callable[[], Any], frames: int) -> float:
    """CPU microseconds a call of `send()`."""
    start = time.process_time_ns()
    for _ in range(frames):
        send()
    return (time.process_time_ns() - start) / frames / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if rtp_forwarder.rtp_send_native is None:
        sys.exit("bridge/rtp_send_native.c is not built: run make install")
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)
    now = time.time()

    def path(native: bool, chunks: list[bytes], prefix: bytes) -> Callable[[], Any]:
        # One stream (and SRTP session) a path: its sequence numbers only go forward.
        out, sequences = forwarder(receiver, sender), itertools.count(0, len(chunks))
        if native:
            return lambda: out._send_native(out._native, now, next(sequences) & 0xFFFF, 0,
                                            chunks, prefix, prefix)
        return lambda: out._send_python(now, next(sequences) & 0xFFFF, 0, chunks, prefix,
                                        prefix)

    paths = {"video_python": path(False, VIDEO_CHUNKS, b"1234"),
             "video_native": path(True, VIDEO_CHUNKS, b"1234"),
             "audio_python": path(False, AUDIO_CHUNKS, b""),
             "audio_native": path(True, AUDIO_CHUNKS, b"")}
    rounds: dict[str, list[float]] = {name: [] for name in paths}
    for index in range(args.repeat):
        for name, send in paths.items():
            rounds[name].append(per_frame_us(send, args.frames))
        log(f"round {index + 1}: " + ", ".join(f"{n} {r[-1]:.1f} us" for n, r in rounds.items()))
    sender.close()
    receiver.close()
    print_native_against_python("send_path", rounds, "frame", frames=args.frames,
                                repeat=args.repeat)


if __name__ == "__main__":
    main()
