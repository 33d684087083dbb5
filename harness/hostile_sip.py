"""A hostile SIP room for tests: it answers every INVITE with 200 OK and a body that is
not a usable SDP (`BODIES`), and says 200 to everything else. Run it in the test's
namespace: `python -m harness.hostile_sip <port> <kind>`; it exits after `--seconds`."""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from harness.netns import Namespace
from vcbridge.core.settings import PROJECT_ROOT

BODIES = {
    # Not SDP at all.
    "garbage": "this is not a session description\r\n\x00\x01\x02",
    # SDP whose only media is on a port and codec nobody offered, with a line too long.
    "nonsense": ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                 "m=audio 9 RTP/AVP 127\r\na=rtpmap:127 X-NOTHING/1\r\n"
                 "a=x-long:" + "A" * 3000 + "\r\n"),
}


def _header(lines: list[str], name: str) -> str:
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return ""


def answer(request: bytes, body: str) -> bytes | None:
    """The reply to one request (None for an ACK or a response)."""
    text = request.decode("utf-8", "replace")
    head = text.split("\r\n\r\n", 1)[0].split("\r\n")
    method = head[0].split(" ", 1)[0]
    if method in ("ACK", "SIP/2.0") or not method:
        return None
    copied = [line for line in head[1:]
              if line.split(":", 1)[0].strip().lower() in ("via", "from", "call-id", "cseq")]
    to = _header(head[1:], "to")
    if ";tag=" not in to:
        to += ";tag=hostile"
    payload = body if method == "INVITE" else ""
    lines = ["SIP/2.0 200 OK", *copied, f"To: {to}",
             "Contact: <sip:hostile@127.0.0.1>"]
    if payload:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(payload.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + payload).encode()


def main() -> None:
    """Serve on 127.0.0.1:<port> for a bounded time."""
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("kind", choices=sorted(BODIES))
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.seconds
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", args.port))
        sock.settimeout(0.5)
        print("ready", flush=True)
        while time.monotonic() < deadline:
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            reply = answer(data, BODIES[args.kind])
            if reply is not None:
                sock.sendto(reply, peer)


@contextlib.contextmanager
def running_hostile_room(netns: Namespace, port: int, kind: str,
                         seconds: float = 60.0) -> Iterator[None]:
    """The hostile room on 127.0.0.1:`port` of `netns`, ready; killed on exit."""
    process = subprocess.Popen(
        [*netns.exec_prefix, sys.executable, "-m", "harness.hostile_sip", str(port), kind,
         "--seconds", str(seconds)], stdout=subprocess.PIPE, cwd=PROJECT_ROOT)
    try:
        assert process.stdout is not None
        if process.stdout.readline() != b"ready\n":
            raise RuntimeError("the hostile SIP room did not start")
        yield
    finally:
        process.kill()
        process.wait(5)


if __name__ == "__main__":
    main()
