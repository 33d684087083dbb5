"""The pure rules of SIP room systems: a failed call in the connect policy, SIP answers
as roll-call reasons, the roster's SIP block, and what the dialer reads from SIP URIs
and INFO bodies. No network: fixed datetimes and strings."""

from __future__ import annotations

import dataclasses
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bridge.sip.call_outcome import failure_reason, hangup_is_leaving, media_failure_reason
from bridge.sip.dialer import SipTarget, address_of, conference_of
from bridge.sip.janus_gateway import dtmf_relay_digit
from scheduler.connect_policy import (
    CALL_FAILURES,
    Action,
    ConnectState,
    Reason,
    RedialPolicy,
    closed,
    dropped,
    fail,
    invite,
    joined,
    new_connection,
    rollcall,
    tick,
)
from vcbridge.core.roster import RosterError, load_roster

POLICY = RedialPolicy()
T0 = datetime(2026, 11, 30, 0, 30, tzinfo=UTC)


def test_a_failed_call_is_an_unanswered_attempt_with_its_reason_and_is_redialled() -> None:
    conn = invite(new_connection(T0), T0, POLICY)
    failed, action = fail(conn, T0 + timedelta(seconds=2), POLICY, Reason.BUSY)
    assert action is None
    assert (failed.state, failed.reason, failed.attempts) == (ConnectState.NO_ANSWER,
                                                               Reason.BUSY, 1)
    # Redialled at the first backoff step counted from the failure, not the timeout.
    assert failed.next_action_at == T0 + timedelta(seconds=2) + POLICY.backoff[0]
    assert failed.redialling
    assert tick(failed, failed.next_action_at, POLICY)[1] is Action.INVITE
    again = invite(failed, failed.next_action_at, POLICY)
    assert (again.state, again.reason, again.attempts) == (ConnectState.INVITED,
                                                           Reason.BUSY, 2)
    # It answers at last: joined, attempts start over.
    assert joined(again, again.last_change).attempts == 0


def test_failures_lead_to_absence_once_like_timeouts() -> None:
    conn = invite(new_connection(T0), T0, POLICY)
    now = T0
    actions = []
    for _ in range(POLICY.absent_after):
        conn, action = fail(conn, now, POLICY, Reason.UNREACHABLE)
        actions.append(action)
        now = conn.next_action_at or now
        conn = invite(conn, now, POLICY)
    assert actions[:-1] == [None] * (POLICY.absent_after - 1)
    assert actions[-1] is Action.ESCALATE_ABSENT
    conn, action = fail(conn, now, POLICY, Reason.UNREACHABLE)
    assert (conn.state, action) == (ConnectState.ABSENT, None)  # escalated once only


def test_a_dropped_room_that_is_busy_on_redial_stays_dropped_and_keeps_being_called() -> None:
    up = joined(invite(new_connection(T0), T0, POLICY), T0)
    down = dropped(up, T0 + timedelta(minutes=5), POLICY)
    redial = invite(down, down.next_action_at or T0, POLICY)
    after, action = fail(redial, redial.last_change, POLICY, Reason.BUSY)
    assert (after.state, after.reason, action) == (ConnectState.DROPPED, Reason.DROPPED, None)
    assert after.redialling


def test_fail_ignores_an_endpoint_with_no_invitation_out_and_refuses_other_reasons() -> None:
    up = joined(invite(new_connection(T0), T0, POLICY), T0)
    assert fail(up, T0, POLICY, Reason.BUSY) == (up, None)
    with pytest.raises(ValueError):
        fail(invite(new_connection(T0), T0, POLICY), T0, POLICY, Reason.DECLINED)


def test_the_roll_call_names_the_sip_reasons_in_both_languages() -> None:
    conns = {}
    for index, reason in enumerate(sorted(CALL_FAILURES)):
        conns[f"SIP-{index}"] = fail(invite(new_connection(T0), T0, POLICY), T0, POLICY,
                                     reason)[0]
    call = rollcall(conns)
    en, vi = call.summary_en(), call.summary_vi()
    for phrase in ("busy (redialling)", "unreachable (redialling)",
                   "call rejected (redialling)", "no common codec (redialling)"):
        assert phrase in en
    for phrase in ("máy bận", "không liên lạc được", "cuộc gọi bị từ chối",
                   "không có codec chung"):
        assert unicodedata.is_normalized("NFC", phrase) and phrase in vi
    # The record: an invitation out when the room closes is "no answer".
    out = invite(conns["SIP-0"], conns["SIP-0"].next_action_at or T0, POLICY)
    assert closed(out, T0 + timedelta(hours=2)).reason is Reason.NO_ANSWER


@pytest.mark.parametrize(("code", "reason"), [
    (486, "busy"), (600, "busy"),
    (404, "unreachable"), (408, "unreachable"), (480, "unreachable"), (503, "unreachable"),
    (0, "unreachable"),
    (488, "no_common_codec"), (606, "no_common_codec"),
    (403, "rejected"), (603, "rejected"), (401, "rejected"), (500, "rejected"),
])
def test_sip_answers_map_to_roll_call_reasons(code: int, reason: str) -> None:
    assert failure_reason(code) == reason
    assert Reason(reason) in CALL_FAILURES  # the scheduler knows every one


def test_media_refusals_and_hangups() -> None:
    assert media_failure_reason("no-common-codec") == "no_common_codec"
    assert media_failure_reason("malformed") == "rejected"
    assert hangup_is_leaving(200, gateway_lost=False)  # the room's BYE: it left
    assert not hangup_is_leaving(200, gateway_lost=True)
    assert not hangup_is_leaving(503, gateway_lost=False)  # media gone: dropped


def test_addresses_and_conference_numbers_from_sip_uris() -> None:
    assert address_of("sip:NgaSon@10.0.0.7:5070;transport=udp") == "ngason@10.0.0.7"
    assert address_of('"Nga Sơn" <sips:ngason@sip.thanhhoa.gov.vn>') == \
        "ngason@sip.thanhhoa.gov.vn"
    assert address_of("not a uri") == ""
    assert conference_of("sip:42@127.0.0.1:5060") == 42
    assert conference_of("sip:bridge@127.0.0.1") is None
    assert conference_of("sip:99999999999@proxy") is None  # not a conference number
    target = SipTarget("X", "sip:room@10.0.0.7", transport="tcp")
    assert target.dial_uri == "sip:room@10.0.0.7;transport=tcp"


def test_dtmf_relay_bodies() -> None:
    assert dtmf_relay_digit("application/dtmf-relay", "Signal=*\r\nDuration=160\r\n") == "*"
    assert dtmf_relay_digit("application/dtmf-relay; charset=x", "Signal= 1") == "1"
    assert dtmf_relay_digit("application/dtmf", "Signal=1") is None
    assert dtmf_relay_digit("application/dtmf-relay", "Signal=12") is None
    assert dtmf_relay_digit("application/dtmf-relay", None) is None


def test_the_roster_accepts_a_sip_room_and_refuses_hostile_uris(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"endpoints": [{
        "code": "HUYEN-NGA-SON", "name": "UBND huyện Nga Sơn", "kind": "district",
        "sip": {"uri": "sip:ngason@sip.thanhhoa.gov.vn", "transport": "tls",
                "srtp": "mandatory", "proxy": "sip:10.0.0.5:5060"}}]}, allow_unicode=True))
    [entry] = load_roster(good)
    assert (entry.sip_uri, entry.sip_transport, entry.sip_srtp, entry.sip_proxy) == (
        "sip:ngason@sip.thanhhoa.gov.vn", "tls", "mandatory", "sip:10.0.0.5:5060")
    for sip in ({"uri": "sip:room@host\r\nVia: evil"}, {"uri": "http://host"},
                {"uri": "sip:a b@host"}, {"uri": "sip:room@host", "srtp": "yes"},
                {"uri": "sip:room@host", "transport": "sctp"}, {"transport": "udp"}):
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump({"endpoints": [{
            "code": "HUYEN-NGA-SON", "name": "x", "kind": "district", "sip": sip}]}))
        with pytest.raises(RosterError, match=r"endpoints\[0\]\.sip"):
            load_roster(bad)


def test_a_sip_rooms_answer_is_its_heartbeat_in_the_health_model() -> None:
    from monitoring.health.codec import report_from_json, report_to_json
    from monitoring.health.model import (
        HealthState,
        Observation,
        ReasonCode,
        Thresholds,
        evaluate,
        sip_presence,
    )

    thresholds = Thresholds()
    report = sip_presence(T0, 12.5)
    # No event stream (the bridge calls it) and no device facts: ok while it answers.
    health = evaluate(Observation(report, stream_connected=False), T0, thresholds)
    assert (health.state, health.reasons) == (HealthState.OK, ())
    # The same silence rule as an agent: offline, no heartbeat.
    later = T0 + thresholds.offline_after + timedelta(seconds=1)
    silent = evaluate(Observation(report, stream_connected=False), later, thresholds)
    assert silent.state is HealthState.OFFLINE
    assert [r.code for r in silent.reasons] == [ReasonCode.NO_HEARTBEAT]
    # An agent without its event stream is still degraded for it.
    agent = dataclasses.replace(report, source="agent")
    degraded = evaluate(Observation(agent, stream_connected=False), T0, thresholds)
    assert [r.code for r in degraded.reasons] == [ReasonCode.EVENT_STREAM_DOWN]
    # Stored and read back by another process, the source survives; old rows are agents'.
    stored = report_to_json(report)
    assert report_from_json(stored) == report
    assert report_from_json({**stored, "source": None}).source == "agent"  # type: ignore[union-attr]
