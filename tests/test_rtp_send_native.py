"""The forwarder's send path in C (`bridge/rtp_send_native.c`): what reaches the wire is
what the Python path would have sent, byte for byte once unprotected, on real UDP sockets
on loopback with real libsrtp sessions.

Skips where the module is not built (a developer's machine without a C compiler) and
fails under VCBRIDGE_REQUIRE_ALL=1 (CI), where `pip install` must have built it."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pylibsrtp
import pytest

from bridge import rtp_forwarder, srtp_calls
from tests.support import skip_or_fail

PROFILE = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
SSRC, PAYLOAD_TYPE, TIMESTAMP = 0x11223344, 96, 0xFFFFFFF0
EXTENSION = b"\xbe\xde\x00\x02\x10\x30\x32\x00\x00\x00\x00\x00"  # MID "0", abs-send-time
ABS_OFFSET = 7  # where the abs-send-time's three bytes go in EXTENSION


@pytest.fixture
def native() -> Any:
    if rtp_forwarder.rtp_send_native is None:
        skip_or_fail("bridge/rtp_send_native.c is not built (pip install -e . builds it)")
    return rtp_forwarder.rtp_send_native


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    yield sender, receiver
    sender.close()
    receiver.close()


def sessions() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    key = os.urandom(30)
    return (pylibsrtp.Session(pylibsrtp.Policy(
                key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=PROFILE)),
            pylibsrtp.Session(pylibsrtp.Policy(
                key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=PROFILE)))


def sockaddr(receiver: socket.socket) -> bytes:
    return rtp_forwarder.pack_sockaddr(*receiver.getsockname())


def expected(sequence: int, now: float, first_prefix: bytes, prefix: bytes,
             chunks: list[bytes]) -> list[bytes]:
    """The clear packets the Python path builds for the same frame."""
    abs_time = (int(now * (1 << 18)) & 0xFFFFFF).to_bytes(3, "big")
    extension = EXTENSION[:ABS_OFFSET] + abs_time + EXTENSION[ABS_OFFSET + 3:]
    packets = []
    for index, chunk in enumerate(chunks):
        marker = 0x80 if index == len(chunks) - 1 else 0
        header = struct.pack("!BBHII", 0x90, PAYLOAD_TYPE | marker,
                             (sequence + index) & 0xFFFF, TIMESTAMP, SSRC)
        packets.append(header + extension + (prefix if index else first_prefix) + chunk)
    return packets


def send(native: Any, sender: socket.socket, receiver: socket.socket,
         tx: pylibsrtp.Session, sequence: int, chunks: list[bytes], *, gso: bool,
         first_prefix: bytes = b"\x90\x80\x81\x02", prefix: bytes = b"\x80\x80\x81\x02",
         addr: bytes | None = None, fd: int | None = None) -> Any:
    protect, context = srtp_calls.calls(tx).native_protect
    return native.send_frame(
        sender.fileno() if fd is None else fd, sockaddr(receiver) if addr is None else addr,
        protect, context, EXTENSION, ABS_OFFSET, 1234.5678, PAYLOAD_TYPE, sequence, TIMESTAMP,
        SSRC, first_prefix, prefix, chunks, gso)


@pytest.mark.parametrize("gso", [True, False])
def test_a_frame_arrives_as_the_python_path_builds_it(
        native: Any, sockets: tuple[socket.socket, socket.socket], gso: bool) -> None:
    sender, receiver = sockets
    tx, rx = sessions()
    # Equal chunks but a shorter last (as VP8 is cut), across a sequence-number rollover.
    chunks = [os.urandom(1296), os.urandom(1296), os.urandom(1296), os.urandom(700)]
    octets = send(native, sender, receiver, tx, 65534, chunks, gso=gso)
    assert octets == sum(map(len, chunks)) + 4 * len(chunks)
    arrived = [rx.unprotect(receiver.recv(2048)) for _ in chunks]  # one datagram a packet
    assert arrived == expected(65534, 1234.5678, b"\x90\x80\x81\x02", b"\x80\x80\x81\x02",
                               chunks)


def test_one_audio_packet_and_frames_of_unequal_or_many_packets(
        native: Any, sockets: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = sockets
    tx, rx = sessions()
    sequence = 100
    frames = [[b"opus" * 20],  # audio: one packet, no prefix
              [os.urandom(500), os.urandom(1200), os.urandom(300)],  # GSO not possible
              [os.urandom(1000) for _ in range(70)]]  # more than one GSO send can carry
    for chunks in frames:
        prefix = b"" if len(chunks) == 1 else b"\x80\x80\x81\x02"
        assert send(native, sender, receiver, tx, sequence, chunks, gso=True,
                    first_prefix=prefix, prefix=prefix) == sum(map(len, chunks)) + len(
                        prefix) * len(chunks)
        arrived = [rx.unprotect(receiver.recv(2048)) for _ in chunks]
        assert arrived == expected(sequence, 1234.5678, prefix, prefix, chunks)
        sequence += len(chunks)


def test_a_failed_send_returns_every_datagram_not_sent_protected_and_in_order(
        native: Any, sockets: tuple[socket.socket, socket.socket]) -> None:
    _sender, receiver = sockets
    tx, rx = sessions()
    chunks = [os.urandom(1296), os.urandom(1296), os.urandom(200)]
    # A datagram socket of another family refuses an IPv4 address: nothing is sent.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as wrong:
        error, unsent = send(native, wrong, receiver, tx, 7, chunks, gso=False)
    assert error != 0 and len(unsent) == 3
    assert [rx.unprotect(d) for d in unsent] == expected(
        7, 1234.5678, b"\x90\x80\x81\x02", b"\x80\x80\x81\x02", chunks)


def test_bad_calls_raise_and_send_nothing(
        native: Any, sockets: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = sockets
    tx, _rx = sessions()
    with pytest.raises(TypeError):
        native.send_frame(1, 2, 3)
    with pytest.raises(ValueError, match="too long"):
        send(native, sender, receiver, tx, 1, [b"x" * 1400], gso=True)
    with pytest.raises(TypeError):
        send(native, sender, receiver, tx, 1, ["not bytes"], gso=True)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="no SRTP session"):
        native.send_frame(sender.fileno(), sockaddr(receiver), 0, 0, b"", -1, 0.0, 96, 1, 1,
                          1, b"", b"", [b"x"], False)
    receiver.settimeout(0.2)
    with pytest.raises(TimeoutError):
        receiver.recv(2048)
