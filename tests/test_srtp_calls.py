"""SRTP straight into libsrtp (`bridge/srtp_calls.py`) gives exactly what pylibsrtp's own
methods give, on the same sessions.

Fails loudly when a pylibsrtp upgrade moves the private names the direct calls
use; read bridge/srtp_calls.py and adapt it before letting the upgrade in."""

from __future__ import annotations

import gc
import os
import struct
from importlib.metadata import version

import pylibsrtp
import pytest

from bridge import srtp_calls

PROFILES = [pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
            pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80]


def rtp(sequence: int, size: int = 1200, ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", 0x80, 96, sequence, sequence * 3000, ssrc) + os.urandom(size)


def rtcp_rr(ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)  # an empty receiver report


def test_pylibsrtp_is_the_pinned_version() -> None:
    assert version("pylibsrtp") == srtp_calls.PINNED_PYLIBSRTP


@pytest.mark.parametrize("profile", PROFILES)
def test_the_direct_calls_give_what_pylibsrtp_gives(profile: int) -> None:
    key = os.urandom(28 if profile == pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM else 30)

    def session(direction: int) -> pylibsrtp.Session:
        return pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=direction,
                                                  srtp_profile=profile))

    ours, theirs = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND), session(
        pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    ours_in, theirs_in = session(pylibsrtp.Policy.SSRC_ANY_INBOUND), session(
        pylibsrtp.Policy.SSRC_ANY_INBOUND)
    direct, direct_in = srtp_calls.calls(ours), srtp_calls.calls(ours_in)
    for sequence in (1, 2, 3, 65535, 0, 1):  # across a rollover of the sequence number
        clear = rtp(sequence, size=100 + sequence % 1100)
        protected = direct.protect(clear)
        assert protected == theirs.protect(clear)
        assert direct_in.unprotect(protected) == clear == theirs_in.unprotect(protected)
        report = rtcp_rr()
        protected_rtcp = direct.protect_rtcp(report)
        assert protected_rtcp == theirs.protect_rtcp(report)
        assert direct_in.unprotect_rtcp(protected_rtcp) == report
        assert theirs_in.unprotect_rtcp(protected_rtcp) == report


def test_the_direct_calls_share_the_session_state_with_pylibsrtps_methods() -> None:
    # aiortc keeps calling pylibsrtp's methods on the same sessions (for what the bridge
    # leaves to it): the rollover counter and replay window must be one.
    key = os.urandom(28)
    profile = pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM
    sender = pylibsrtp.Session(pylibsrtp.Policy(
        key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
    inbound = pylibsrtp.Session(pylibsrtp.Policy(
        key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile))
    first = srtp_calls.calls(sender).protect(rtp(10))
    second = sender.protect(rtp(11))
    assert inbound.unprotect(first)
    assert srtp_calls.calls(inbound).unprotect(second)
    # A replay is refused whichever way it comes, with pylibsrtp's error.
    with pytest.raises(pylibsrtp.Error, match="replay"):
        srtp_calls.calls(inbound).unprotect(first)
    with pytest.raises(pylibsrtp.Error, match="replay"):
        inbound.unprotect(second)


def test_forged_and_oversized_packets_are_refused_as_pylibsrtp_refuses_them() -> None:
    key = os.urandom(28)
    profile = pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM
    sender = pylibsrtp.Session(pylibsrtp.Policy(
        key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
    inbound = srtp_calls.calls(pylibsrtp.Session(pylibsrtp.Policy(
        key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile)))
    protected = bytearray(srtp_calls.calls(sender).protect(rtp(5)))
    protected[40] ^= 0x01
    with pytest.raises(pylibsrtp.Error, match="authentication"):
        inbound.unprotect(bytes(protected))
    with pytest.raises(ValueError, match="too long"):
        srtp_calls.calls(sender).protect(rtp(6, size=1500))


def test_calls_are_made_once_per_session() -> None:
    session = pylibsrtp.Session(pylibsrtp.Policy(
        key=os.urandom(28), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM))
    assert srtp_calls.calls(session) is srtp_calls.calls(session)


def test_a_transform_kept_alone_keeps_its_session_alive() -> None:
    # The session owns the libsrtp context the transform calls: dropping the session
    # while a transform is kept must not free it (that would crash the process).
    protect = srtp_calls.calls(pylibsrtp.Session(pylibsrtp.Policy(
        key=os.urandom(28), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM))).protect
    gc.collect()
    assert len(protect(rtp(1, size=100))) == 12 + 100 + 16  # header, payload, GCM tag
