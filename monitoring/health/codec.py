"""The JSON forms of the health facts, as `endpoint_health` keeps them and the API shows
them, and the decoding of columns read raw (JSON as text on SQLite, decoded on asyncpg;
times as naive UTC text on SQLite, aware on PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from monitoring.health.model import (
    CallFigures,
    Devices,
    HealthState,
    QualityHold,
    Reason,
    ReasonCode,
    Report,
    TestCall,
)


def detail_to_json(detail: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The JSON form of a call's detail (each kind a wire model, or already JSON)."""
    if detail is None:
        return None
    return {kind: body.model_dump(by_alias=True, mode="json") if isinstance(body, BaseModel)
            else body for kind, body in detail.items()}


def quality_to_json(hold: QualityHold) -> dict[str, Any]:
    """The stored form of a quality verdict."""
    return {"reasons": [r.to_store() for r in hold.reasons],
            "good": {code.value: count for code, count in hold.good}}


def quality_from_json(body: Any) -> QualityHold | None:
    """A quality verdict from its stored form (None when absent or unreadable)."""
    if not isinstance(body, dict):
        return None
    reasons = reasons_from_store(body.get("reasons") or ())
    good_body = body.get("good") or {}
    good: list[tuple[ReasonCode, int]] = []
    for reason in reasons:
        count = good_body.get(reason.code.value, 0)
        good.append((reason.code, int(count) if isinstance(count, int) else 0))
    return QualityHold(reasons, tuple(good))


def report_to_json(report: Report) -> dict[str, Any]:
    """The stored (and API) form of a heartbeat's facts."""
    call = report.call
    return {
        "received_at": report.received_at.isoformat(),
        "sent_at": report.sent_at.isoformat() if report.sent_at else None,
        "clock_offset_seconds": round(report.clock_offset_seconds, 3),
        "agent_version": report.agent_version,
        "source": report.source,
        "devices": {"camera": report.devices.camera, "microphone": report.devices.microphone,
                    "speaker": report.devices.speaker},
        "cpu_percent": report.cpu_percent,
        "network": {"interface": report.network_interface, "rtt_ms": report.network_rtt_ms},
        "call": None if call is None else {
            "conference": call.conference, "rtt_ms": call.rtt_ms, "jitter_ms": call.jitter_ms,
            "packet_loss_ratio": call.packet_loss_ratio, "bitrate_in_bps": call.bitrate_in_bps,
            "bitrate_out_bps": call.bitrate_out_bps, "fps": call.fps,
            "audio_level": call.audio_level, "source": call.source,
            "detail": detail_to_json(call.detail),
        },
        "quality": None if report.quality is None else quality_to_json(report.quality),
    }


def report_from_json(body: Mapping[str, Any] | None) -> Report | None:
    """The model's `Report` from its stored form (None when absent or unreadable)."""
    if not body:
        return None
    try:
        devices = body["devices"]
        call = body.get("call")
        network = body.get("network") or {}
        return Report(
            received_at=datetime.fromisoformat(body["received_at"]),
            devices=Devices(bool(devices["camera"]), bool(devices["microphone"]),
                            bool(devices["speaker"])),
            clock_offset_seconds=float(body.get("clock_offset_seconds") or 0.0),
            cpu_percent=body.get("cpu_percent"),
            network_rtt_ms=network.get("rtt_ms"),
            call=None if call is None else CallFigures(**call),
            sent_at=datetime.fromisoformat(body["sent_at"]) if body.get("sent_at") else None,
            agent_version=body.get("agent_version"),
            network_interface=network.get("interface"),
            quality=quality_from_json(body.get("quality")),
            source="sip" if body.get("source") == "sip" else "agent",
        )
    except (KeyError, TypeError, ValueError):
        return None


def test_call_to_json(test_call: TestCall) -> dict[str, Any]:
    """The stored (and API) form of a test call."""
    return {"ok": test_call.ok, "at": test_call.at.isoformat(),
            "audio_packets": test_call.audio_packets, "video_frames": test_call.video_frames,
            "loss": test_call.loss, "rtt_ms": test_call.rtt_ms}


def test_call_from_json(body: Mapping[str, Any] | None) -> TestCall | None:
    """The model's `TestCall` from its stored form (None when absent or unreadable)."""
    if not body:
        return None
    try:
        return TestCall(ok=bool(body["ok"]), at=datetime.fromisoformat(body["at"]),
                        audio_packets=int(body.get("audio_packets") or 0),
                        video_frames=int(body.get("video_frames") or 0),
                        loss=body.get("loss"), rtt_ms=body.get("rtt_ms"))
    except (KeyError, TypeError, ValueError):
        return None


def reasons_from_store(items: Iterable[Mapping[str, Any]] | None) -> tuple[Reason, ...]:
    """The reasons of a stored list, leaving out codes this version does not know."""
    reasons = (Reason.from_store(item) for item in items or ())
    return tuple(r for r in reasons if r is not None)


def state_of(text: str) -> HealthState:
    """A stored state; an unknown one reads as offline."""
    try:
        return HealthState(text)
    except ValueError:
        return HealthState.OFFLINE


def utc(value: Any) -> Any:
    """A stored time as an aware UTC datetime (SQLite: naive UTC text; PostgreSQL: aware)."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def decoded(value: Any, decode: Callable[[Any], Any]) -> Any:
    """A JSON column read as text (SQLite) or already decoded (asyncpg), decoded."""
    return decode(json.loads(value) if isinstance(value, str) else value)


def decode_reasons(body: Any) -> tuple[Reason, ...]:
    """Reasons from a decoded JSON column."""
    return reasons_from_store(body if isinstance(body, list) else None)


def decode_test_call(body: Any) -> TestCall | None:
    """A test call from a decoded JSON column."""
    return test_call_from_json(body if isinstance(body, dict) else None)
