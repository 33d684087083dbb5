"""The receive path in C (`bridge/rtp_receive_native.c`): a site's SRTP packet is
unprotected with a real libsrtp session and parsed in one call, to the fields the
Python path (`srtp_calls` then `lean_rtp.parse_packet`) gives; what libsrtp refuses is
refused. The parse alone is compared with aiortc's in `tests/test_lean_rtp.py`.

Skips where the module is not built (a developer's machine without a C compiler) and
fails under VCBRIDGE_REQUIRE_ALL=1 (CI), where `pip install` must have built it."""

from __future__ import annotations

import os
from typing import Any

import pylibsrtp
import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, RtpPacket

from bridge import datagram_tap, srtp_calls
from bridge.lean_rtp import extension_ids, packet_of, parse_packet
from tests.support import skip_or_fail

MAP = HeaderExtensionsMap()
MAP.configure(RTCRtpParameters(headerExtensions=[
    RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
    RTCRtpHeaderExtensionParameters(id=2, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
    RTCRtpHeaderExtensionParameters(
        id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time")]))
IDS = extension_ids(MAP)


@pytest.fixture
def native() -> Any:
    if datagram_tap.rtp_receive_native is None:
        skip_or_fail("bridge/rtp_receive_native.c is not built (pip install -e . builds it)")
    return datagram_tap.rtp_receive_native


def sessions(profile: int) -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    key = os.urandom(30 if profile == pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
                     else 28)
    return (pylibsrtp.Session(pylibsrtp.Policy(
                key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)),
            pylibsrtp.Session(pylibsrtp.Policy(
                key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile)))


def clear_packet(sequence: int, *, level: tuple[bool, int] | None = (True, 30),
                 payload: bytes = bytes(range(60))) -> bytes:
    packet = RtpPacket(payload_type=111, marker=1, sequence_number=sequence,
                       timestamp=960 * sequence, ssrc=0x01020304, payload=payload)
    packet.extensions = HeaderExtensions(mid="0", audio_level=level, abs_send_time=0xABCDEF)
    return packet.serialize(MAP)


def receive(native: Any, rx: pylibsrtp.Session, data: bytes) -> Any:
    return native.receive(data, *srtp_calls.calls(rx).native_unprotect, IDS)


def fields(packet: RtpPacket) -> tuple[object, ...]:
    return (packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp,
            packet.ssrc, packet.csrc, packet.payload, packet.padding_size,
            packet.extensions.audio_level, packet.extensions.abs_send_time)


@pytest.mark.parametrize("profile", [pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
                                     pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM])
def test_a_protected_packet_reads_as_the_python_path_reads_it(native: Any,
                                                                profile: int) -> None:
    """Across a sequence-number rollover, with and without a level, empty and full-size
    payloads: the same fields as unprotecting with pylibsrtp and parsing in Python."""
    tx, rx = sessions(profile)
    for n, sequence in enumerate([65533, 65534, 65535, 0, 1]):
        clear = clear_packet(sequence, level=None if n == 2 else (n % 2 == 0, 10 * n),
                             payload=b"" if n == 3 else bytes([n]) * (1200 if n == 4 else 60))
        protected = tx.protect(clear)
        got = packet_of(receive(native, rx, protected))
        assert fields(got) == fields(parse_packet(clear, IDS))
        assert got.extensions.audio_level == (None if n == 2 else (n % 2 == 0, 10 * n))
        assert got.extensions.abs_send_time == 0xABCDEF


def test_what_libsrtp_refuses_is_refused_and_nothing_raises(native: Any) -> None:
    """A replayed packet and a forged one come back as libsrtp's status (the caller drops
    them); the session still takes the next genuine packet."""
    tx, rx = sessions(pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    first = tx.protect(clear_packet(100))
    assert isinstance(receive(native, rx, first), tuple)
    assert receive(native, rx, first) == 9  # srtp_err_status_replay_fail
    forged = bytearray(tx.protect(clear_packet(101)))
    forged[20] ^= 0x01
    assert receive(native, rx, bytes(forged)) == 7  # srtp_err_status_auth_fail
    assert packet_of(receive(native, rx, tx.protect(clear_packet(102)))).sequence_number == 102


def test_bad_arguments_raise_and_an_oversized_packet_is_refused(native: Any) -> None:
    tx, rx = sessions(pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    unprotect, context = srtp_calls.calls(rx).native_unprotect
    with pytest.raises(TypeError):
        native.receive(b"", unprotect, context)
    with pytest.raises(ValueError, match="no SRTP session"):
        native.receive(tx.protect(clear_packet(1)), 0, 0, IDS)
    with pytest.raises(ValueError, match="too long"):
        native.receive(bytes(native.MAX_PACKET + 1), unprotect, context, IDS)
    with pytest.raises(AttributeError):
        native.receive(tx.protect(clear_packet(2)), unprotect, context, object())
    with pytest.raises(TypeError):
        native.receive("text", unprotect, context, IDS)
    # None of that touched the session: the packet is still taken.
    assert packet_of(receive(native, rx, tx.protect(clear_packet(3)))).sequence_number == 3
