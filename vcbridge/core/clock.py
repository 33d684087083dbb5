"""One injectable source of time, so time-dependent logic is testable without sleeps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to (tests, benchmarks)."""

    def __init__(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        """Move the clock to `at`."""
        self._at = at.astimezone(UTC)


def to_local_iso(value: datetime, zone: ZoneInfo) -> str:
    """RFC 3339 text of `value` in the province's zone, e.g. 2026-11-30T08:00:00+07:00."""
    return value.astimezone(zone).isoformat(timespec="seconds")
