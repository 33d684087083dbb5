"""What taking in one RTP packet of a site costs the bridge before its tap, in a loop on
its own: unprotecting and parsing in Python against one call into C
(`bridge/rtp_receive_native.c`).

    .venv/bin/python bench/receive_path.py [--packets 20000] [--repeat 5]

`datagram_tap._read_tapped`, the code the bridge runs for each packet of a site's
microphone or camera, reads real SRTP-protected packets: Opus-sized audio with its
MID and audio level, and camera-sized video with its MID and abs-send-time, each
through a fresh receiving session (libsrtp refuses a replay). CPU time of this process
a packet, median of `--repeat` rounds; one JSON line at the end. In the bridge the same
code costs more (cold caches; docs/performance.md)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pylibsrtp
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from bench.shared import log, print_native_against_python
from bridge import datagram_tap

PROFILE = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
URIS = ["urn:ietf:params:rtp-hdrext:sdes:mid",
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"]


def extensions() -> HeaderExtensionsMap:
    """A transport's negotiated header extensions (MID, audio level, abs-send-time)."""
    negotiated = HeaderExtensionsMap()
    negotiated.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=n, uri=uri) for n, uri in enumerate(URIS, 1)]))
    return negotiated


def protected(key: bytes, count: int, video: bool) -> list[bytes]:
    """`count` SRTP packets of one stream, as a site sends them."""
    session = pylibsrtp.Session(pylibsrtp.Policy(
        key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=PROFILE))
    negotiated, payload = extensions(), os.urandom(1200 if video else 80)
    packets = []
    for n in range(count):
        packet = RtpPacket(payload_type=96 if video else 111, marker=n % 4 == 3,
                           sequence_number=n & 0xFFFF, timestamp=n * 960, ssrc=0x5EED,
                           payload=payload)
        packet.extensions.mid = "1" if video else "0"
        if video:
            packet.extensions.abs_send_time = n & 0xFFFFFF
        else:
            packet.extensions.audio_level = (True, 30)
        packets.append(session.protect(packet.serialize(negotiated)))
    return packets


def per_packet_us(key: bytes, packets: list[bytes]) -> float:
    """CPU microseconds a packet of `datagram_tap._read_tapped`, with a fresh session."""
    dtls = SimpleNamespace(_rtp_header_extensions_map=extensions(), _rx_srtp=pylibsrtp.Session(
        pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                         srtp_profile=PROFILE)))
    read = datagram_tap._read_tapped
    start = time.process_time_ns()
    for data in packets:
        if read(dtls, data) is None:
            raise SystemExit("a packet was refused")
    return (time.process_time_ns() - start) / len(packets) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    native = datagram_tap.rtp_receive_native
    if native is None:
        sys.exit("bridge/rtp_receive_native.c is not built: run make install")
    key = os.urandom(30)
    streams = {"audio": protected(key, args.packets, False),
               "video": protected(key, args.packets, True)}
    rounds: dict[str, list[float]] = {}
    for index in range(args.repeat):
        for kind, packets in streams.items():
            for path, module in (("python", None), ("native", native)):
                datagram_tap.rtp_receive_native = module
                rounds.setdefault(f"{kind}_{path}", []).append(per_packet_us(key, packets))
        log(f"round {index + 1}: " + ", ".join(f"{n} {r[-1]:.2f} us" for n, r in rounds.items()))
    print_native_against_python("receive_path", rounds, "packet", packets=args.packets,
                                repeat=args.repeat)


if __name__ == "__main__":
    main()
