"""SRTP protect and unprotect straight into libsrtp, through pylibsrtp's own binding
(private API, pinned to pylibsrtp 1.0.0).

The bridge protects or unprotects about 9,000 packets a second at 31 sites.
pylibsrtp's `Session.protect` allocates a length cell and goes through two
method calls and an error-check call for each; about 0.75 µs of its 2.0-2.3 µs
a packet is that Python around the C call (`bench/srtp_calls.py`). Here each
session gets, once, a length cell and a buffer of its own, and the call is
libsrtp's function itself. The SRTP state (keys, rollover counters, replay
windows) stays in the session's libsrtp context, so these calls and
pylibsrtp's own methods (aiortc's, for everything the bridge leaves to it)
can be mixed on one session: they share the context, not the buffer.

Errors are pylibsrtp's: `pylibsrtp.Error` with libsrtp's message when libsrtp
refuses (a replayed or forged packet), `ValueError` for a packet too long, as
pylibsrtp raises them.

Relied upon (checked by `tests/test_srtp_calls.py`, which compares every result
with pylibsrtp's own methods): `Session._srtp` (a `srtp_t *` cell), the
binding's `ffi` and `lib` with `srtp_protect` and `srtp_unprotect` (whose addresses,
with the context's, `SessionCalls.native_protect` and `native_unprotect` give to
`bridge/rtp_send_native.c` and `rtp_receive_native.c`),
`srtp_protect_rtcp`, `srtp_unprotect_rtcp`, and the module's `ERRORS` table and
trailer lengths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pylibsrtp
from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]

PINNED_PYLIBSRTP = "1.0.0"
BUFFER_SIZE = 1500  # as pylibsrtp's own buffer
CALLS = "_vcbridge_srtp_calls"  # attribute set on a pylibsrtp.Session instance

Transform = Callable[[bytes], bytes]


class SessionCalls:
    """One SRTP session's four transforms, each a direct call into libsrtp, and the
    addresses native code calls libsrtp with (`native_protect`, `native_unprotect`: the
    function's and the session's libsrtp context's; valid while the session lives)."""

    __slots__ = ("native_protect", "native_unprotect", "protect", "protect_rtcp", "unprotect",
                 "unprotect_rtcp")

    def __init__(self, session: pylibsrtp.Session) -> None:
        context = int(ffi.cast("uintptr_t", session._srtp[0]))
        self.native_protect = (_address("srtp_protect"), context)
        self.native_unprotect = (_address("srtp_unprotect"), context)
        self.protect = _transform(session, lib.srtp_protect, pylibsrtp.SRTP_MAX_TRAILER_LEN)
        self.protect_rtcp = _transform(session, lib.srtp_protect_rtcp,
                                       pylibsrtp.SRTP_MAX_SRTCP_TRAILER_LEN)
        self.unprotect = _transform(session, lib.srtp_unprotect, 0)
        self.unprotect_rtcp = _transform(session, lib.srtp_unprotect_rtcp, 0)


def calls(session: pylibsrtp.Session) -> SessionCalls:
    """`session`'s direct transforms, made on first use and kept on the session."""
    found: SessionCalls | None = session.__dict__.get(CALLS)
    if found is None:
        found = session.__dict__[CALLS] = SessionCalls(session)
    return found


def _address(function: str) -> int:
    return int(ffi.cast("uintptr_t", ffi.addressof(lib, function)))


def _transform(session: pylibsrtp.Session, function: Any, trailer: int) -> Transform:
    # The transform holds the session: its libsrtp context is freed with the session,
    # so a transform kept alone (the session dropped) must keep it alive. Kept on the
    # session too, that is a reference cycle, which the garbage collector frees.
    context = session._srtp[0]
    cdata = ffi.new("char[]", BUFFER_SIZE)
    buffer = ffi.buffer(cdata)
    length = ffi.new("int *")
    limit = BUFFER_SIZE - trailer

    def transform(packet: bytes) -> bytes:
        size = len(packet)
        if size > limit:
            raise ValueError("packet is too long")
        buffer[0:size] = packet
        length[0] = size
        status = function(context, cdata, length)
        if status:
            raise pylibsrtp.Error(pylibsrtp.ERRORS[status] if status < len(pylibsrtp.ERRORS)
                                  else f"libsrtp error {status}")
        result: bytes = buffer[0:length[0]]
        return result

    transform.session = session  # type: ignore[attr-defined]
    return transform
