"""The per-endpoint connect policy: invitations, redials, escalation, roll call.

Pure and on fixed datetimes: a conference hour is simulated by jumping from one
`next_action_at` to the next, never by sleeping."""

from __future__ import annotations

import dataclasses
import random
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from scheduler.connect_policy import (
    Action,
    ConnectState,
    EndpointConnection,
    Missing,
    Reason,
    RedialPolicy,
    RollCall,
    closed,
    declined,
    dropped,
    invite,
    joined,
    left,
    new_connection,
    rollcall,
    tick,
)

CS = ConnectState
POLICY = RedialPolicy()
T0 = datetime(2026, 11, 30, 0, 30, tzinfo=UTC)  # the room opens: 07:30 in Hanoi


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


ROSTER = (
    "TINH-UY",
    "UBND-TINH",
    "SO-TTTT",
    "DBQH-HDND",
    "TP-THANH-HOA",
    "TP-SAM-SON",
    "TX-BIM-SON",
    "HUYEN-BA-THUOC",
    "HUYEN-CAM-THUY",
    "HUYEN-DONG-SON",
    "HUYEN-HA-TRUNG",
    "HUYEN-HAU-LOC",
    "HUYEN-HOANG-HOA",
    "HUYEN-LANG-CHANH",
    "HUYEN-MUONG-LAT",
    "HUYEN-NGA-SON",
    "HUYEN-NGOC-LAC",
    "HUYEN-NHU-THANH",
    "HUYEN-NHU-XUAN",
    "HUYEN-NONG-CONG",
    "HUYEN-QUAN-HOA",
    "HUYEN-QUAN-SON",
    "HUYEN-QUANG-XUONG",
    "HUYEN-THACH-THANH",
    "HUYEN-THIEU-HOA",
    "HUYEN-THO-XUAN",
    "HUYEN-THUONG-XUAN",
    "HUYEN-TINH-GIA",
    "HUYEN-TRIEU-SON",
    "HUYEN-VINH-LOC",
    "HUYEN-YEN-DINH",
)


Event = tuple[str, datetime, int]


def drive(
    conn: EndpointConnection,
    until: datetime,
    policy: RedialPolicy = POLICY,
    answers: Callable[[int], bool] = lambda attempt: False,
) -> tuple[EndpointConnection, list[Event]]:
    """Run the scheduler's loop until `until`: wake at each `next_action_at`, tick,
    act on the action; the endpoint joins at once on the attempts `answers` accepts."""
    log: list[Event] = []
    while conn.next_action_at is not None and conn.next_action_at <= until:
        now = conn.next_action_at
        conn, action = tick(conn, now, policy)
        if action is Action.INVITE:
            conn = invite(conn, now, policy)
            log.append(("invite", now, conn.attempts))
            if answers(conn.attempts):
                conn = joined(conn, now + s(5))
                log.append(("joined", now + s(5), conn.attempts))
        elif action is Action.ESCALATE_ABSENT:
            log.append(("escalate", now, conn.attempts))
    return conn, log


def in_state(state: ConnectState, policy: RedialPolicy = POLICY) -> EndpointConnection:
    """A connection in `state`, reached through real events."""
    conn = new_connection(T0)
    if state is CS.PENDING:
        return conn
    conn = invite(conn, T0, policy)
    if state is CS.INVITED:
        return conn
    if state is CS.NO_ANSWER:
        return tick(conn, T0 + policy.invite_timeout, policy)[0]
    if state is CS.ABSENT:
        return drive(conn, T0 + timedelta(minutes=10), policy)[0]
    if state is CS.DECLINED:
        return declined(conn, T0 + s(3), policy)
    conn = joined(conn, T0 + s(5))
    if state is CS.JOINED:
        return conn
    if state is CS.DROPPED:
        return dropped(conn, T0 + s(60), policy)
    assert state is CS.LEFT
    return left(conn, T0 + s(60))


# --- the policy ---------------------------------------------------------------


def test_default_policy() -> None:
    assert POLICY.invite_timeout == s(20)
    assert POLICY.backoff == (s(30), s(60), s(120))
    assert POLICY.absent_after == 4
    assert POLICY.redial_dropped_every == s(30)


def test_absent_after_follows_the_backoff_unless_given() -> None:
    assert RedialPolicy(backoff=(s(10),)).absent_after == 2
    assert RedialPolicy(backoff=(s(10), s(20)), absent_after=7).absent_after == 7


def test_wait_after_is_capped_at_the_last_step() -> None:
    assert [POLICY.wait_after(n) for n in range(1, 7)] == [
        s(30),
        s(60),
        s(120),
        s(120),
        s(120),
        s(120),
    ]
    assert POLICY.wait_after(0) == s(30)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"invite_timeout": s(0)}, "invite_timeout must be positive"),
        ({"backoff": ()}, "backoff must have at least one step"),
        ({"backoff": (s(10), s(-1))}, "backoff steps must not be negative"),
        ({"redial_dropped_every": s(-1)}, "redial_dropped_every must not be negative"),
        ({"absent_after": -1}, "absent_after must be positive"),
    ],
)
def test_policy_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedialPolicy(**kwargs)  # type: ignore[arg-type]


def test_connection_is_immutable() -> None:
    conn = new_connection(T0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        conn.state = CS.JOINED  # type: ignore[misc]
    invite(conn, T0, POLICY)
    assert conn.state is CS.PENDING  # the event returned a new value


# --- first invitation ---------------------------------------------------------


def test_pending_is_invited_at_its_time() -> None:
    conn = new_connection(T0, invite_at=T0 + s(10))
    assert conn == EndpointConnection(CS.PENDING, 0, T0, T0 + s(10), Reason.NOT_INVITED)
    assert tick(conn, T0 + s(9), POLICY) == (conn, None)
    assert tick(conn, T0 + s(10), POLICY) == (conn, Action.INVITE)
    assert new_connection(T0).next_action_at == T0


def test_invite_waits_for_the_timeout() -> None:
    conn = invite(new_connection(T0), T0, POLICY)
    assert conn == EndpointConnection(CS.INVITED, 1, T0, T0 + s(20), Reason.INVITED)
    assert not conn.redialling
    assert tick(conn, T0 + s(19), POLICY) == (conn, None)
    after, action = tick(conn, T0 + s(20), POLICY)
    assert action is None
    assert after == EndpointConnection(CS.NO_ANSWER, 1, T0 + s(20), T0 + s(50), Reason.NO_ANSWER)
    assert after.redialling


def test_an_action_is_repeated_until_recorded() -> None:
    # The dial failed (bridge error) and was not recorded: the next tick asks again.
    conn = tick(invite(new_connection(T0), T0, POLICY), T0 + s(20), POLICY)[0]
    assert tick(conn, T0 + s(50), POLICY) == (conn, Action.INVITE)
    assert tick(conn, T0 + s(55), POLICY) == (conn, Action.INVITE)
    conn = invite(conn, T0 + s(55), POLICY)
    assert tick(conn, T0 + s(56), POLICY) == (conn, None)


def test_join_on_the_first_invitation() -> None:
    conn = joined(invite(new_connection(T0), T0, POLICY), T0 + s(4))
    assert conn == EndpointConnection(CS.JOINED, 0, T0 + s(4), None, Reason.JOINED)
    assert tick(conn, T0 + timedelta(hours=3), POLICY) == (conn, None)


# --- backoff and absence -------------------------------------------------------


def test_backoff_sequence_timing_is_exact() -> None:
    _, log = drive(new_connection(T0), T0 + s(300))
    assert log == [
        ("invite", T0, 1),  # times out at +20
        ("invite", T0 + s(50), 2),  # 30 s after; times out at +70
        ("invite", T0 + s(130), 3),  # 60 s after; times out at +150
        ("invite", T0 + s(270), 4),  # 120 s after; times out at +290
        ("escalate", T0 + s(290), 4),
    ]


def test_absent_is_escalated_exactly_once_and_still_redialled() -> None:
    conn, log = drive(new_connection(T0), T0 + timedelta(hours=2))
    escalations = [e for e in log if e[0] == "escalate"]
    assert escalations == [("escalate", T0 + s(290), 4)]
    invites = [at for kind, at, _ in log if kind == "invite"]
    # After the escalation: one invitation every 120 s + the 20 s timeout.
    gaps = {b - a for a, b in pairwise(invites[3:])}
    assert gaps == {s(140)}
    assert invites[4] == T0 + s(410)
    assert conn.state in (CS.ABSENT, CS.INVITED)
    assert conn.reason is Reason.ABSENT
    assert conn.redialling


def test_absent_state_after_escalation() -> None:
    conn = in_state(CS.ABSENT)
    assert conn.state is CS.ABSENT
    assert conn.reason is Reason.ABSENT
    assert conn.attempts >= 4
    # Re-invited at the last backoff interval, silently on timeout.
    assert tick(conn, conn.next_action_at or T0, POLICY) == (conn, Action.INVITE)
    at = conn.next_action_at or T0
    conn = invite(conn, at, POLICY)
    assert (conn.state, conn.reason) == (CS.INVITED, Reason.ABSENT)
    conn, action = tick(conn, at + s(20), POLICY)
    assert action is None
    assert conn == EndpointConnection(
        CS.ABSENT, conn.attempts, at + s(20), at + s(140), Reason.ABSENT
    )


def test_absent_endpoint_that_finally_joins() -> None:
    conn = joined(in_state(CS.ABSENT), T0 + timedelta(minutes=40))
    assert conn == EndpointConnection(CS.JOINED, 0, T0 + timedelta(minutes=40), None, Reason.JOINED)


def test_join_on_a_later_attempt_stops_redialling() -> None:
    conn, log = drive(new_connection(T0), T0 + timedelta(hours=1), answers=lambda n: n == 3)
    assert [e[0] for e in log] == ["invite", "invite", "invite", "joined"]
    assert conn.state is CS.JOINED
    assert conn.next_action_at is None


def test_custom_policy_escalates_after_its_attempts() -> None:
    policy = RedialPolicy(invite_timeout=s(10), backoff=(s(5),), absent_after=2)
    _, log = drive(new_connection(T0), T0 + s(60), policy)
    assert log == [
        ("invite", T0, 1),
        ("invite", T0 + s(15), 2),
        ("escalate", T0 + s(25), 2),
        ("invite", T0 + s(30), 3),
        ("invite", T0 + s(45), 4),
        ("invite", T0 + s(60), 5),
    ]


def test_late_tick_catches_up_timeout_and_invitation_in_one_call() -> None:
    conn = invite(new_connection(T0), T0, POLICY)
    now = T0 + timedelta(minutes=10)  # the service was down
    after, action = tick(conn, now, POLICY)
    assert action is Action.INVITE
    # The timeout is dated when it happened, not when it was noticed.
    assert after == EndpointConnection(CS.NO_ANSWER, 1, T0 + s(20), T0 + s(50), Reason.NO_ANSWER)
    again = invite(after, now, POLICY)
    assert (again.attempts, again.next_action_at) == (2, now + s(20))


def test_late_tick_escalates_once_then_invites() -> None:
    conn, _ = drive(new_connection(T0), T0 + s(280))
    assert (conn.state, conn.attempts) == (CS.INVITED, 4)
    now = T0 + timedelta(minutes=30)
    conn, action = tick(conn, now, POLICY)
    assert action is Action.ESCALATE_ABSENT
    assert conn.state is CS.ABSENT
    conn, action = tick(conn, now, POLICY)
    assert action is Action.INVITE
    conn, action = tick(invite(conn, now, POLICY), now + timedelta(minutes=30), POLICY)
    assert action is Action.INVITE  # timed out again: silent, then due again
    assert conn.state is CS.ABSENT


# --- declined ------------------------------------------------------------------


def test_declined_is_not_reinvited_automatically() -> None:
    conn = declined(invite(new_connection(T0), T0, POLICY), T0 + s(3), POLICY)
    assert conn == EndpointConnection(CS.DECLINED, 1, T0 + s(3), None, Reason.DECLINED)
    assert not conn.redialling
    for hours in range(1, 5):
        assert tick(conn, T0 + timedelta(hours=hours), POLICY) == (conn, None)


def test_operator_may_reinvite_a_declined_endpoint() -> None:
    conn = invite(in_state(CS.DECLINED), T0 + s(100), POLICY)
    assert conn == EndpointConnection(CS.INVITED, 1, T0 + s(100), T0 + s(120), Reason.INVITED)


def test_stale_decline_after_join_changes_nothing() -> None:
    conn = in_state(CS.JOINED)
    assert declined(conn, T0 + s(30), POLICY) is conn


# --- dropped ---------------------------------------------------------------------


def test_drop_is_redialled_after_redial_dropped_every() -> None:
    conn = dropped(in_state(CS.JOINED), T0 + s(600), POLICY)
    assert conn == EndpointConnection(CS.DROPPED, 0, T0 + s(600), T0 + s(630), Reason.DROPPED)
    assert conn.redialling
    assert tick(conn, T0 + s(629), POLICY) == (conn, None)
    assert tick(conn, T0 + s(630), POLICY) == (conn, Action.INVITE)


def test_dropped_endpoint_reinvited_an_hour_into_the_meeting() -> None:
    start = T0 + timedelta(minutes=30)
    conn = joined(invite(new_connection(T0), T0, POLICY), T0 + s(8))
    drop_at = start + timedelta(hours=1)
    conn = dropped(conn, drop_at, POLICY)
    conn, log = drive(conn, drop_at + timedelta(hours=1))
    invites = [at for kind, at, _ in log if kind == "invite"]
    assert invites[:5] == [
        drop_at + s(30),  # redial_dropped_every
        drop_at + s(30 + 20 + 30),  # then the backoff: 30 s
        drop_at + s(80 + 20 + 60),  # 60 s
        drop_at + s(160 + 20 + 120),  # 120 s
        drop_at + s(300 + 20 + 120),  # capped at 120 s
    ]
    # Redialled for the whole hour, never declared absent nor escalated.
    assert all(kind == "invite" for kind, _, _ in log)
    assert invites[-1] > drop_at + timedelta(minutes=57)
    assert conn.state in (CS.DROPPED, CS.INVITED)
    assert conn.reason is Reason.DROPPED
    assert conn.attempts == len(invites)


def test_dropped_endpoint_back_on_line_rejoins() -> None:
    conn = dropped(in_state(CS.JOINED), T0 + s(600), POLICY)
    conn, log = drive(conn, T0 + timedelta(hours=1), answers=lambda n: n == 2)
    assert [e[0] for e in log] == ["invite", "invite", "joined"]
    assert conn.state is CS.JOINED and conn.attempts == 0
    # A second drop starts again from the quick redial.
    again = dropped(conn, T0 + timedelta(hours=1), POLICY)
    assert again.next_action_at == T0 + timedelta(hours=1) + s(30)


@pytest.mark.parametrize("state", [st for st in ConnectState if st is not CS.JOINED])
def test_only_a_joined_endpoint_can_drop(state: ConnectState) -> None:
    conn = in_state(state)
    assert dropped(conn, T0 + timedelta(hours=1), POLICY) is conn


# --- left, joined, duplicates -----------------------------------------------------------


def test_left_on_purpose_is_not_redialled() -> None:
    conn = left(in_state(CS.JOINED), T0 + timedelta(hours=2))
    assert conn.state is CS.LEFT
    assert conn.reason is Reason.LEFT
    assert conn.next_action_at is None
    assert not conn.redialling
    assert tick(conn, T0 + timedelta(hours=3), POLICY) == (conn, None)
    assert left(conn, T0 + timedelta(hours=3)) is conn


@pytest.mark.parametrize("state", list(ConnectState))
def test_a_join_from_any_state_is_joined(state: ConnectState) -> None:
    at = T0 + timedelta(hours=1)
    conn = joined(in_state(state), at)
    assert conn.state is CS.JOINED
    assert conn.next_action_at is None
    if state is not CS.JOINED:
        assert conn == EndpointConnection(CS.JOINED, 0, at, None, Reason.JOINED)


def test_duplicate_events_change_nothing() -> None:
    conn = in_state(CS.JOINED)
    assert joined(conn, T0 + s(90)) is conn  # keeps the first join time
    invited = in_state(CS.INVITED)
    assert invite(invited, T0 + s(5), POLICY) is invited  # no extra attempt, same timeout
    assert invite(conn, T0 + s(90), POLICY) is conn  # nothing to dial
    declined_conn = in_state(CS.DECLINED)
    assert declined(declined_conn, T0 + s(90), POLICY) is declined_conn


@pytest.mark.parametrize("state", list(ConnectState))
def test_events_from_every_state(state: ConnectState) -> None:
    """The whole transition table: each event from each state."""
    conn = in_state(state)
    at = T0 + timedelta(hours=1)
    expected_invite = {
        CS.PENDING: (CS.INVITED, 1, Reason.INVITED),
        CS.INVITED: (CS.INVITED, conn.attempts, conn.reason),
        CS.JOINED: (CS.JOINED, 0, Reason.JOINED),
        CS.NO_ANSWER: (CS.INVITED, conn.attempts + 1, Reason.NO_ANSWER),
        CS.DECLINED: (CS.INVITED, 1, Reason.INVITED),
        CS.DROPPED: (CS.INVITED, 1, Reason.DROPPED),
        CS.ABSENT: (CS.INVITED, conn.attempts + 1, Reason.ABSENT),
        CS.LEFT: (CS.INVITED, 1, Reason.INVITED),
    }[state]
    after = invite(conn, at, POLICY)
    assert (after.state, after.attempts, after.reason) == expected_invite
    assert declined(conn, at, POLICY).state is (CS.JOINED if state is CS.JOINED else CS.DECLINED)
    assert dropped(conn, at, POLICY).state is (CS.DROPPED if state is CS.JOINED else state)
    assert left(conn, at).state is CS.LEFT
    assert joined(conn, at).state is CS.JOINED


def test_random_walks_keep_the_invariants() -> None:
    """Property: whatever the order of events, (1) something is scheduled exactly
    when the state may still call the endpoint, (2) ESCALATE_ABSENT only comes
    with the move into absent, at most once per unbroken run of failures, and
    (3) an endpoint redialled after a drop is never declared absent."""
    rng = random.Random(20261130)
    events = ("tick",) * 6 + ("invite", "joined", "declined", "dropped", "left")
    for _ in range(300):
        conn, now = new_connection(T0), T0
        escalated = False
        for _ in range(60):
            now += s(rng.choice((1, 5, 20, 30, 90, 400)))
            event = rng.choice(events)
            before = conn
            if event == "tick":
                conn, action = tick(conn, now, POLICY)
                if action is Action.ESCALATE_ABSENT:
                    assert before.state is CS.INVITED and conn.state is CS.ABSENT
                    assert before.reason is not Reason.DROPPED
                    assert not escalated
                    escalated = True
                elif action is Action.INVITE:
                    conn = invite(conn, now, POLICY)
            elif event == "invite":
                conn = invite(conn, now, POLICY)
            elif event == "joined":
                conn = joined(conn, now)
            elif event == "declined":
                conn = declined(conn, now, POLICY)
            elif event == "dropped":
                conn = dropped(conn, now, POLICY)
            else:
                conn = left(conn, now)
            if conn.reason in (Reason.INVITED, Reason.JOINED):
                escalated = False  # a fresh cycle may escalate again
            if before.reason is Reason.DROPPED and conn.state is not CS.JOINED:
                assert conn.state is not CS.ABSENT
            quiet = conn.state in (CS.JOINED, CS.DECLINED, CS.LEFT)
            assert (conn.next_action_at is None) == quiet
            assert conn.attempts >= 0
            assert conn.last_change <= now


def test_the_end_keeps_why_those_who_never_came_stayed_away() -> None:
    """At the end, "left" means the endpoint was there; the others keep their reason
    (issue 15: absent sites used to become "left"), and nobody is called again."""
    end = T0 + timedelta(hours=2)
    redial_dropped = invite(in_state(CS.DROPPED), T0 + s(90), POLICY)
    redial_absent = invite(in_state(CS.ABSENT), T0 + timedelta(minutes=11), POLICY)
    expected = {
        CS.JOINED: (CS.LEFT, Reason.LEFT),
        CS.DROPPED: (CS.LEFT, Reason.LEFT),
        CS.LEFT: (CS.LEFT, Reason.LEFT),
        CS.PENDING: (CS.PENDING, Reason.NOT_INVITED),
        CS.INVITED: (CS.NO_ANSWER, Reason.NO_ANSWER),
        CS.NO_ANSWER: (CS.NO_ANSWER, Reason.NO_ANSWER),
        CS.ABSENT: (CS.ABSENT, Reason.ABSENT),
        CS.DECLINED: (CS.DECLINED, Reason.DECLINED),
    }
    for state, (final, reason) in expected.items():
        conn = closed(in_state(state), end)
        assert (conn.state, conn.reason) == (final, reason), state
        assert conn.next_action_at is None and not conn.redialling, state
        assert closed(conn, end + s(1)) == conn, state  # closing twice changes nothing
    assert closed(redial_dropped, end).state is CS.LEFT  # it was there
    assert closed(redial_absent, end).state is CS.ABSENT
    absent = in_state(CS.ABSENT)
    assert closed(absent, end).attempts == absent.attempts > POLICY.absent_after  # kept


# --- roll call ----------------------------------------------------------------------------


def meeting(**overrides: EndpointConnection) -> dict[str, EndpointConnection]:
    joined_conn = in_state(CS.JOINED)
    conns = {code: joined_conn for code in ROSTER}
    conns.update({code.replace("_", "-"): conn for code, conn in overrides.items()})
    return conns


def test_rollcall_summaries_in_both_languages() -> None:
    call = rollcall(
        meeting(
            HUYEN_MUONG_LAT=in_state(CS.NO_ANSWER),
            HUYEN_QUAN_SON=dropped(in_state(CS.JOINED), T0 + timedelta(hours=1), POLICY),
        )
    )
    assert (call.expected, call.connected) == (31, 29)
    assert call.missing == (
        Missing("HUYEN-MUONG-LAT", CS.NO_ANSWER, Reason.NO_ANSWER, True),
        Missing("HUYEN-QUAN-SON", CS.DROPPED, Reason.DROPPED, True),
    )
    assert call.summary_en() == (
        "29/31 connected; missing: HUYEN-MUONG-LAT no answer (redialling), "
        "HUYEN-QUAN-SON dropped (redialling)"
    )
    assert call.summary_vi() == (
        "29/31 điểm cầu đã kết nối; chưa vào: HUYEN-MUONG-LAT không trả lời (đang gọi lại), "
        "HUYEN-QUAN-SON rớt kết nối (đang gọi lại)"
    )


def test_rollcall_every_reason() -> None:
    redial_dropped = invite(in_state(CS.DROPPED), T0 + s(90), POLICY)
    call = rollcall(
        meeting(
            TINH_UY=in_state(CS.PENDING),
            SO_TTTT=in_state(CS.INVITED),
            TP_SAM_SON=redial_dropped,
            HUYEN_BA_THUOC=in_state(CS.DECLINED),
            HUYEN_NGA_SON=in_state(CS.ABSENT),
            HUYEN_YEN_DINH=in_state(CS.LEFT),
        )
    )
    assert (call.expected, call.connected) == (31, 25)
    # Missing endpoints keep the roster order.
    assert [m.code for m in call.missing] == [
        "TINH-UY",
        "SO-TTTT",
        "TP-SAM-SON",
        "HUYEN-BA-THUOC",
        "HUYEN-NGA-SON",
        "HUYEN-YEN-DINH",
    ]
    # An endpoint being invited again after a drop still reads as dropped.
    assert call.missing[2] == Missing("TP-SAM-SON", CS.INVITED, Reason.DROPPED, True)
    assert call.summary_en() == (
        "25/31 connected; missing: TINH-UY not invited yet, SO-TTTT invited, "
        "TP-SAM-SON dropped (redialling), HUYEN-BA-THUOC declined, "
        "HUYEN-NGA-SON absent (redialling), HUYEN-YEN-DINH left"
    )
    assert call.summary_vi() == (
        "25/31 điểm cầu đã kết nối; chưa vào: TINH-UY chưa mời, SO-TTTT đang mời, "
        "TP-SAM-SON rớt kết nối (đang gọi lại), HUYEN-BA-THUOC từ chối, "
        "HUYEN-NGA-SON vắng mặt (đang gọi lại), HUYEN-YEN-DINH đã rời"
    )


def test_rollcall_all_connected() -> None:
    call = rollcall(meeting())
    assert call == RollCall(31, 31, ())
    assert call.summary_en() == "31/31 connected"
    assert call.summary_vi() == "31/31 điểm cầu đã kết nối"


def test_rollcall_of_nobody() -> None:
    assert rollcall({}).summary_en() == "0/0 connected"


def test_vietnamese_text_is_precomposed() -> None:
    # NFC, as typed on a Vietnamese keyboard and as the roster names are stored.
    call = rollcall(
        meeting(
            **{
                code.replace("-", "_"): in_state(state)
                for code, state in zip(ROSTER, ConnectState, strict=False)
                if state is not CS.JOINED
            }
        )
    )
    text = call.summary_vi()
    assert unicodedata.is_normalized("NFC", text)
    for word in ("đang mời", "chưa mời", "từ chối", "không trả lời", "vắng mặt", "đã rời"):
        assert unicodedata.is_normalized("NFC", word)
        assert word in text
