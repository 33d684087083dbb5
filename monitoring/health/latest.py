"""The newest facts about an endpoint and the merge rule: "the newest heartbeat wins".

Each process keeps in memory what it received; the `endpoint_health` row is the
shared truth. Wherever the two meet (the sweep, the API, recording a change)
they are merged part by part with `Latest.newer`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from monitoring.health.codec import report_to_json, test_call_to_json
from monitoring.health.model import HealthState, Reason, ReasonCode, Report, TestCall


@dataclass(frozen=True)
class Latest:
    """The newest facts about an endpoint (from memory or from its row)."""

    report: Report | None = None
    test_call: TestCall | None = None

    # The stored (and API) forms, made only when asked for: most heartbeats are never
    # written or shown.
    @cached_property
    def report_json(self) -> dict[str, Any] | None:
        """The report's stored form (None: no report)."""
        return None if self.report is None else report_to_json(self.report)

    @cached_property
    def test_call_json(self) -> dict[str, Any] | None:
        """The test call's stored form (None: no test call)."""
        return None if self.test_call is None else test_call_to_json(self.test_call)

    def newer(self, other: Latest) -> Latest:
        """Each part from whichever of the two is newer."""
        mine, theirs = self.report, other.report
        use_mine = theirs is None or (mine is not None and mine.received_at >= theirs.received_at)
        mine_tc, theirs_tc = self.test_call, other.test_call
        use_mine_tc = theirs_tc is None or (mine_tc is not None and mine_tc.at >= theirs_tc.at)
        return Latest(self.report if use_mine else other.report,
                      self.test_call if use_mine_tc else other.test_call)


@dataclass(frozen=True)
class Stored:
    """An endpoint_health row, decoded (its report only when it was read)."""

    endpoint_id: int
    state: HealthState
    reasons: tuple[Reason, ...]
    since: datetime
    last_heartbeat: datetime | None
    latest: Latest

    @property
    def codes(self) -> frozenset[ReasonCode]:
        """The codes of the stored reasons."""
        return frozenset(r.code for r in self.reasons)
