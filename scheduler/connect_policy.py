"""How one endpoint is connected to one conference: invitations, redials, roll call. No I/O.

Each endpoint of a conference has an `EndpointConnection`, a small immutable
state machine. Bridge events (`joined`, `declined`, `dropped`, `left`) and the
scheduler's own actions (`invite`) each return a new value; `tick` says what the
scheduler must do now (invite again, or escalate an absent endpoint).

    pending --invite--> invited --join--> joined --drop--> dropped --invite--> invited ...
                         |   |                  +--left--> left
                         |   +--decline--> declined        (no automatic re-invite)
                         +--timeout--> no_answer --invite--> invited ...
                         |             (after `absent_after` attempts: absent, escalated once)
                         +--fail--> no_answer with why (busy, unreachable, rejected,
                                    no common codec) --invite--> invited ...

`fail` is the bridge dialling a SIP room system that refused or could not be
reached: it counts as an unanswered attempt at once, and is redialled with the
same policy (backoff, absence), keeping the reason for the roll call.

A join from any state moves to joined. Times come from the caller's clock, so
everything is testable on fixed datetimes."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta


class ConnectState(enum.StrEnum):
    PENDING = "pending"  # not invited yet
    INVITED = "invited"  # an invitation is out, waiting for the endpoint to join
    JOINED = "joined"
    NO_ANSWER = "no_answer"  # the last invitation timed out; another one is scheduled
    DECLINED = "declined"  # refused; only an operator re-invites it
    DROPPED = "dropped"  # was connected and lost the call; redialled all meeting long
    ABSENT = "absent"  # never answered `absent_after` invitations; escalated, still redialled
    LEFT = "left"  # hung up on purpose (the end of its part in the meeting)


class Reason(enum.StrEnum):
    """Short English machine reason of the current state, for logs, the API and roll call.

    It differs from the state only while an invitation is out: then it says why
    the endpoint is being invited (`invited` for a first call, else the failure
    being redialled), and it marks which redial rules apply to the next timeout."""

    NOT_INVITED = "not_invited"
    INVITED = "invited"
    JOINED = "joined"
    NO_ANSWER = "no_answer"
    DECLINED = "declined"
    DROPPED = "dropped"
    ABSENT = "absent"
    LEFT = "left"
    # A SIP room's call failed (`fail`); redialled like no_answer.
    BUSY = "busy"  # 486, 600
    UNREACHABLE = "unreachable"  # 404, 408, 480, 503, no answer from the gateway
    REJECTED = "rejected"  # 403, 603, other refusals
    NO_COMMON_CODEC = "no_common_codec"  # 488, 606, or an answer the bridge cannot use


# Reasons of a failed call (`fail`).
CALL_FAILURES = frozenset({Reason.BUSY, Reason.UNREACHABLE, Reason.REJECTED,
                           Reason.NO_COMMON_CODEC})


class Action(enum.StrEnum):
    """What `tick` asks the scheduler to do now."""

    INVITE = "invite"  # send an invitation, then record it with `invite`
    ESCALATE_ABSENT = "escalate_absent"  # tell the operators this endpoint is absent


@dataclass(frozen=True)
class RedialPolicy:
    """How patiently endpoints are invited and redialled.

    `absent_after` left at 0 means `len(backoff) + 1`: every backoff step is
    tried once, and the attempt after the last one decides absence. It is
    resolved when the policy is built, so the attribute always holds the count."""

    # How long an invitation waits for a join before it counts as no answer.
    invite_timeout: timedelta = timedelta(seconds=20)
    # Wait before re-inviting after the 1st, 2nd, 3rd... unanswered attempt;
    # later attempts wait the last value.
    backoff: tuple[timedelta, ...] = (
        timedelta(seconds=30),
        timedelta(seconds=60),
        timedelta(seconds=120),
    )
    # Unanswered attempts after which the endpoint is absent (and escalated).
    absent_after: int = 0
    # Wait before the first redial of an endpoint that dropped: a drop is
    # usually a short network cut, worth retrying soon. Later redials follow
    # `backoff`.
    redial_dropped_every: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if self.invite_timeout <= timedelta(0):
            raise ValueError("invite_timeout must be positive")
        if not self.backoff:
            raise ValueError("backoff must have at least one step")
        if any(step < timedelta(0) for step in self.backoff):
            raise ValueError("backoff steps must not be negative")
        if self.redial_dropped_every < timedelta(0):
            raise ValueError("redial_dropped_every must not be negative")
        if self.absent_after < 0:
            raise ValueError("absent_after must be positive (or 0 for len(backoff) + 1)")
        if self.absent_after == 0:
            object.__setattr__(self, "absent_after", len(self.backoff) + 1)

    def wait_after(self, unanswered: int) -> timedelta:
        """The wait before re-inviting after the `unanswered`-th unanswered attempt (1-based)."""
        return self.backoff[min(max(unanswered, 1), len(self.backoff)) - 1]


@dataclass(frozen=True)
class EndpointConnection:
    """One endpoint's connection to one conference. Immutable: events return a new value."""

    state: ConnectState
    # Invitations sent since the endpoint last joined (or since the start).
    attempts: int
    # When the state last changed (for a timeout: the deadline that passed).
    last_change: datetime
    # When `tick` has something to do; None when nothing is scheduled.
    next_action_at: datetime | None
    reason: Reason

    @property
    def redialling(self) -> bool:
        """True while the policy calls this endpoint again on its own after a failure."""
        if self.next_action_at is None:  # nothing scheduled: the conference is over
            return False
        if self.state == ConnectState.INVITED:
            return self.reason != Reason.INVITED
        return self.state in _REDIAL_STATES


# States whose `next_action_at` is the time of the next invitation.
_REDIAL_STATES = frozenset({ConnectState.NO_ANSWER, ConnectState.DROPPED, ConnectState.ABSENT})
_INVITABLE_STATES = _REDIAL_STATES | {ConnectState.PENDING}


def new_connection(now: datetime, invite_at: datetime | None = None) -> EndpointConnection:
    """A pending endpoint; `tick` asks for its first invitation at `invite_at` (default now)."""
    return EndpointConnection(
        state=ConnectState.PENDING,
        attempts=0,
        last_change=now,
        next_action_at=now if invite_at is None else invite_at,
        reason=Reason.NOT_INVITED,
    )


def invite(conn: EndpointConnection, now: datetime, policy: RedialPolicy) -> EndpointConnection:
    """An invitation was sent at `now`: wait `invite_timeout` for the join.

    Redialling (no_answer, dropped, absent) counts one more attempt and keeps
    the reason, so the next timeout follows the same rules. Inviting a declined
    or left endpoint is an operator's decision and starts afresh at attempt 1.
    An endpoint already invited or joined is returned unchanged: a duplicate
    job must neither count an extra attempt nor push back the timeout, and the
    caller can compare the result with `conn` to know whether to dial."""
    if conn.state in (ConnectState.INVITED, ConnectState.JOINED):
        return conn
    if conn.state in _REDIAL_STATES:
        attempts, reason = conn.attempts + 1, conn.reason
    else:  # pending, declined, left
        attempts, reason = 1, Reason.INVITED
    return EndpointConnection(
        state=ConnectState.INVITED,
        attempts=attempts,
        last_change=now,
        next_action_at=now + policy.invite_timeout,
        reason=reason,
    )


def joined(conn: EndpointConnection, now: datetime) -> EndpointConnection:
    """The endpoint joined: from any state (an absent endpoint that finally joins is welcome).

    Attempts restart from zero, so a later drop is redialled from the first
    backoff step. A duplicate join event changes nothing."""
    if conn.state == ConnectState.JOINED:
        return conn
    return EndpointConnection(ConnectState.JOINED, 0, now, None, Reason.JOINED)


def declined(conn: EndpointConnection, now: datetime, policy: RedialPolicy) -> EndpointConnection:
    """The endpoint refused: it is not re-invited automatically (an operator may).

    `policy` is unused today (declining never schedules anything); it keeps the
    signature of the events that may schedule. A decline that arrives after
    the endpoint joined is stale and changes nothing."""
    if conn.state in (ConnectState.JOINED, ConnectState.DECLINED):
        return conn
    return replace(
        conn,
        state=ConnectState.DECLINED,
        last_change=now,
        next_action_at=None,
        reason=Reason.DECLINED,
    )


def fail(conn: EndpointConnection, now: datetime, policy: RedialPolicy, reason: Reason
         ) -> tuple[EndpointConnection, Action | None]:
    """The invitation out failed at once (`reason` in CALL_FAILURES): an unanswered
    attempt now, redialled with the same rules as a timeout.

    A first call or a no-answer redial keeps `reason` for the roll call; a dropped
    or absent endpoint's redial keeps its own rules (dropped stays dropped, absent
    stays absent). Returns ESCALATE_ABSENT when this attempt decides absence, as
    `tick` would. Only an invited endpoint can fail; other states ignore it."""
    if reason not in CALL_FAILURES:
        raise ValueError(f"not a call failure: {reason}")
    if conn.state != ConnectState.INVITED:
        return conn, None
    new, action = _unanswered(conn, now, policy)
    if new.reason == Reason.NO_ANSWER:
        new = replace(new, reason=reason)
    return new, action


def dropped(conn: EndpointConnection, now: datetime, policy: RedialPolicy) -> EndpointConnection:
    """A joined endpoint lost the call: redial it after `redial_dropped_every`.

    A dropped endpoint is redialled for the whole meeting and never becomes
    absent: it was there, so the operators know about it and the meeting wants
    it back. Only a joined endpoint can drop; other states ignore the event."""
    if conn.state != ConnectState.JOINED:
        return conn
    return EndpointConnection(
        state=ConnectState.DROPPED,
        attempts=0,
        last_change=now,
        next_action_at=now + policy.redial_dropped_every,
        reason=Reason.DROPPED,
    )


def left(conn: EndpointConnection, now: datetime) -> EndpointConnection:
    """The endpoint hung up on purpose (at the end): nothing more is scheduled for it."""
    if conn.state == ConnectState.LEFT:
        return conn
    return replace(
        conn, state=ConnectState.LEFT, last_change=now, next_action_at=None, reason=Reason.LEFT
    )


def closed(conn: EndpointConnection, now: datetime) -> EndpointConnection:
    """The conference ended or was cancelled at `now`: the endpoint's final place in the record.

    "left" means the endpoint was there and left: a joined or dropped endpoint
    (one being called back after a drop too) leaves at `now`. One that never
    came keeps why: declined, absent, no answer (an invitation still out when
    the room closed went unanswered), or pending (never invited). Nothing more
    is scheduled for anyone."""
    if conn.state in (ConnectState.JOINED, ConnectState.DROPPED) or conn.reason == Reason.DROPPED:
        return left(conn, now)
    if conn.state == ConnectState.INVITED:
        state = ConnectState.ABSENT if conn.reason == Reason.ABSENT else ConnectState.NO_ANSWER
        return EndpointConnection(state, conn.attempts, now, None, Reason(state.value))
    if conn.next_action_at is None:
        return conn
    return replace(conn, next_action_at=None)


def _unanswered(
    conn: EndpointConnection, deadline: datetime, policy: RedialPolicy
) -> tuple[EndpointConnection, Action | None]:
    """The connection after its invitation timed out at `deadline`.

    Times count from the deadline, not from when the tick ran, so the redial
    schedule is exact however late the tick fires."""
    if conn.reason == Reason.DROPPED:
        state, reason, action = ConnectState.DROPPED, Reason.DROPPED, None
        wait = policy.wait_after(conn.attempts)
    elif conn.reason == Reason.ABSENT:
        # Already escalated: keep redialling quietly at the slowest pace.
        state, reason, action = ConnectState.ABSENT, Reason.ABSENT, None
        wait = policy.backoff[-1]
    elif conn.attempts >= policy.absent_after:
        state, reason, action = ConnectState.ABSENT, Reason.ABSENT, Action.ESCALATE_ABSENT
        wait = policy.backoff[-1]
    else:
        state, reason, action = ConnectState.NO_ANSWER, Reason.NO_ANSWER, None
        wait = policy.wait_after(conn.attempts)
    new = EndpointConnection(state, conn.attempts, deadline, deadline + wait, reason)
    return new, action


def tick(
    conn: EndpointConnection, now: datetime, policy: RedialPolicy
) -> tuple[EndpointConnection, Action | None]:
    """Advance the connection to `now`; the action the scheduler must take now, if any.

    - Before `next_action_at` (or with nothing scheduled): unchanged, no action.
    - An invitation past its timeout is unanswered: no_answer, with the next
      invitation `backoff[n-1]` after the timeout of the n-th attempt. After
      `absent_after` attempts it becomes absent and the tick returns
      ESCALATE_ABSENT; that happens once, as later timeouts of an absent
      endpoint keep it absent silently.
    - A dropped endpoint's unanswered redial stays dropped, on the same backoff
      (capped at its last value), and is never escalated.
    - Absent endpoints are still re-invited, every `backoff[-1]`: a district
      whose equipment was off at setup often comes on line later, and a call
      every two minutes costs the bridge nothing while the operators were
      already told once. A declined endpoint is never re-invited.
    - When the next invitation is due (pending, no_answer, dropped, absent):
      INVITE. The connection is unchanged until the scheduler records the
      invitation with `invite`, so a failed dial is retried at the next tick.

    At most one action per call. A late tick (after a restart) catches up a
    timeout and a due invitation in one call, but returns ESCALATE_ABSENT on
    its own: the scheduler ticks again after escalating to get the INVITE."""
    due_at = conn.next_action_at
    if due_at is None or now < due_at:
        return conn, None
    if conn.state == ConnectState.INVITED:
        conn, action = _unanswered(conn, due_at, policy)
        if action is not None or conn.next_action_at is None or now < conn.next_action_at:
            return conn, action
    if conn.state in _INVITABLE_STATES:
        return conn, Action.INVITE
    return conn, None


@dataclass(frozen=True)
class Missing:
    """An endpoint of the roll call that is not connected."""

    code: str
    state: ConnectState
    reason: Reason
    redialling: bool


# How each reason reads in a roll call summary.
_PHRASES_EN = {
    Reason.NOT_INVITED: "not invited yet",
    Reason.INVITED: "invited",
    Reason.JOINED: "joined",
    Reason.NO_ANSWER: "no answer",
    Reason.DECLINED: "declined",
    Reason.DROPPED: "dropped",
    Reason.ABSENT: "absent",
    Reason.LEFT: "left",
    Reason.BUSY: "busy",
    Reason.UNREACHABLE: "unreachable",
    Reason.REJECTED: "call rejected",
    Reason.NO_COMMON_CODEC: "no common codec",
}
_PHRASES_VI = {
    Reason.NOT_INVITED: "chưa mời",
    Reason.INVITED: "đang mời",
    Reason.JOINED: "đã vào",
    Reason.NO_ANSWER: "không trả lời",
    Reason.DECLINED: "từ chối",
    Reason.DROPPED: "rớt kết nối",
    Reason.ABSENT: "vắng mặt",
    Reason.LEFT: "đã rời",
    Reason.BUSY: "máy bận",
    Reason.UNREACHABLE: "không liên lạc được",
    Reason.REJECTED: "cuộc gọi bị từ chối",
    Reason.NO_COMMON_CODEC: "không có codec chung",
}


@dataclass(frozen=True)
class RollCall:
    """Who is connected to a conference, and why the others are not."""

    expected: int
    connected: int
    missing: tuple[Missing, ...]

    def summary_en(self) -> str:
        """E.g. '29/31 connected; missing: HUYEN-A no answer (redialling), HUYEN-B declined'."""
        return self._summary("connected", "missing", _PHRASES_EN, "redialling")

    def summary_vi(self) -> str:
        """E.g. '29/31 điểm cầu đã kết nối; chưa vào: HUYEN-A không trả lời (đang gọi lại)'."""
        return self._summary("điểm cầu đã kết nối", "chưa vào", _PHRASES_VI, "đang gọi lại")

    def _summary(
        self, connected: str, missing: str, phrases: Mapping[Reason, str], redialling: str
    ) -> str:
        text = f"{self.connected}/{self.expected} {connected}"
        if not self.missing:
            return text
        # The redial note is per endpoint, in parentheses, so it cannot be read
        # as applying to the whole list.
        items = [
            f"{m.code} {phrases[m.reason]}" + (f" ({redialling})" if m.redialling else "")
            for m in self.missing
        ]
        return f"{text}; {missing}: {', '.join(items)}"


def rollcall(connections: Mapping[str, EndpointConnection]) -> RollCall:
    """The roll call of endpoints by code; missing ones keep the mapping's (roster) order."""
    missing = tuple(
        Missing(code, conn.state, conn.reason, conn.redialling)
        for code, conn in connections.items()
        if conn.state != ConnectState.JOINED
    )
    return RollCall(
        expected=len(connections),
        connected=len(connections) - len(missing),
        missing=missing,
    )
