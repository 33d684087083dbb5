"""Pre-flight readiness, pure: the health of a conference's participants turned into
who is ready and a one-line summary in both languages ("28/31 ready;
HUYEN-MUONG-LAT offline since 07:12")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from monitoring.health.model import (
    NOT_READY_CODES,
    Devices,
    Health,
    HealthState,
    Reason,
    ReasonCode,
    TestCall,
    clock_text,
)


@dataclass(frozen=True)
class ParticipantHealth:
    """One participant of a conference as the readiness check sees it."""

    code: str
    name: str
    health: Health
    since: datetime | None  # when the current state began (None: never seen)
    last_heartbeat: datetime | None = None
    devices: Devices | None = None
    test_call: TestCall | None = None


@dataclass(frozen=True)
class ReadinessItem:
    participant: ParticipantHealth
    ready: bool
    problems: tuple[Reason, ...]  # the reasons that make it not ready
    warnings: tuple[Reason, ...]  # degraded, but can take part


@dataclass(frozen=True)
class Readiness:
    items: tuple[ReadinessItem, ...]
    summary_vi: str
    summary_en: str
    ready: int
    total: int


def _problem_texts(item: ReadinessItem, zone: ZoneInfo, now: datetime) -> tuple[str, str]:
    vi: list[str] = []
    en: list[str] = []
    for reason in item.problems:
        if reason.code is ReasonCode.NEVER_SEEN:
            vi.append("chưa từng kết nối")
            en.append("never connected")
        elif reason.code is ReasonCode.NO_HEARTBEAT:
            since = item.participant.since
            if since is None:
                vi.append("mất kết nối")
                en.append("offline")
            else:
                vi.append(f"mất kết nối từ {clock_text(since, zone, now)}")
                en.append(f"offline since {clock_text(since, zone, now)}")
        elif reason.code is ReasonCode.EVENT_STREAM_DOWN:
            vi.append("không nhận được lời mời (mất luồng sự kiện)")
            en.append("cannot be invited (no event stream)")
        else:
            text_vi, text_en = reason.texts(zone, now)
            vi.append(text_vi)
            en.append(text_en)
    return ", ".join(vi), ", ".join(en)


def readiness(participants: Sequence[ParticipantHealth], now: datetime, zone: ZoneInfo
              ) -> Readiness:
    """Who is ready for the conference, and a one-line summary in both languages:
    '28/31 ready; HUYEN-MUONG-LAT offline since 07:12; HUYEN-QUAN-SON camera missing'."""
    items = []
    for participant in participants:
        problems = tuple(r for r in participant.health.reasons if r.code in NOT_READY_CODES)
        warnings = tuple(r for r in participant.health.reasons if r.code not in NOT_READY_CODES)
        ready = participant.health.state is not HealthState.OFFLINE and not problems
        items.append(ReadinessItem(participant, ready, problems, warnings))
    ready_count = sum(1 for i in items if i.ready)
    total = len(items)
    parts_vi = [f"{ready_count}/{total} điểm cầu sẵn sàng"]
    parts_en = [f"{ready_count}/{total} ready"]
    for item in items:
        if not item.ready:
            vi, en = _problem_texts(item, zone, now)
            parts_vi.append(f"{item.participant.code} {vi}")
            parts_en.append(f"{item.participant.code} {en}")
    return Readiness(tuple(items), "; ".join(parts_vi), "; ".join(parts_en), ready_count, total)
