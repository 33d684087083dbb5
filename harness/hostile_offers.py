"""Offers a hostile site sends (issue 11), built from real aiortc offers: for the
signaling abuse tests and `bench/hostile_site.py` alike."""

from __future__ import annotations

import re

from aiortc import RTCConfiguration, RTCPeerConnection


async def aiortc_offer(kind: str, lines: int = 1) -> str:
    """A real aiortc offer of `lines` media lines of `kind` (no ICE servers)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        for index in range(lines):
            pc.addTransceiver(kind, direction="sendrecv" if index == 0 else "recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


async def thousand_line_offer() -> str:
    """A video offer of 1,000 compact media lines (ICE and DTLS at the session level):
    ~115 KB, under the signaling frame limit, which aiortc took ~0.75 s to parse."""
    head, first, second = re.split(r"(?=^m=)", await aiortc_offer("video", 2),
                                   flags=re.MULTILINE)
    session = "".join(line for line in first.splitlines(keepends=True)
                      if line.startswith(("a=ice-ufrag", "a=ice-pwd", "a=fingerprint:sha-256",
                                          "a=setup")))
    compact = "".join(line for line in second.splitlines(keepends=True)
                      if line.startswith(("m=", "c=", "a=mid", "a=recvonly", "a=rtcp-mux",
                                          "a=rtpmap:97")))
    compact = re.sub(r"^(m=video \d+ \S+) .*$", r"\1 97", compact, flags=re.MULTILINE)
    return (re.sub(r"a=group:BUNDLE[^\r\n]*\r\n", "", head) + session + first
            + "".join(compact.replace("a=mid:1", f"a=mid:{i}") for i in range(1, 1000)))


def without_fingerprint(sdp: str) -> str:
    """`sdp` with every DTLS fingerprint line removed."""
    return "".join(line for line in sdp.splitlines(keepends=True)
                   if not line.startswith("a=fingerprint:"))
