"""What a failed SIP call means for the roll call. No I/O.

The bridge's call to a room system ends in a SIP final response (or in none:
the gateway was down, the call timed out, the answer was unusable). The roll
call shows four reasons (the strings of `scheduler.connect_policy.Reason`,
which the bridge does not import):

| reason | SIP responses |
| --- | --- |
| busy | 486 Busy Here, 600 Busy Everywhere |
| unreachable | 404, 408, 410, 480, 484, 502, 503, 504; no response at all (0) |
| no_common_codec | 488, 606 Not Acceptable, 415; an answer with no usable media |
| rejected | 403, 603 Decline, every other refusal (and a malformed answer) |

and how a call that was up ended: a BYE from the room (Janus reports 200) is
the room leaving; anything else (the gateway lost, a 503 after the media
stopped, a session timer) is a drop, redialled by the policy."""

from __future__ import annotations

from typing import Literal

FailureReason = Literal["busy", "unreachable", "rejected", "no_common_codec"]

_BUSY = frozenset({486, 600})
_UNREACHABLE = frozenset({0, 404, 408, 410, 480, 484, 502, 503, 504})
_NO_CODEC = frozenset({415, 488, 606})


def failure_reason(sip_code: int) -> FailureReason:
    """The roll-call reason of a call that failed with `sip_code` (0: no response)."""
    if sip_code in _BUSY:
        return "busy"
    if sip_code in _UNREACHABLE:
        return "unreachable"
    if sip_code in _NO_CODEC:
        return "no_common_codec"
    return "rejected"


def media_failure_reason(kind: str) -> FailureReason:
    """The reason for an answer the bridge's media side refused (`SipMediaError.reason`)."""
    return "no_common_codec" if kind == "no-common-codec" else "rejected"


def hangup_is_leaving(sip_code: int, gateway_lost: bool) -> bool:
    """True when the room hung up on purpose (a BYE): it left; False: it dropped."""
    return not gateway_lost and sip_code == 200
