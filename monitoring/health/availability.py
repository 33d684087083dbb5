"""The monthly availability report: online time, attendance, call quality per endpoint.

Online time comes from `health_transitions`: each row starts a state that
lasts until the endpoint's next row. Within the month (in the province's
zone, up to now for the current month):

- *monitored* time starts at the endpoint's first transition ever (its first
  heartbeat); before it nothing is known (the agent was not installed yet),
  so that time counts neither as online nor as offline;
- `online_percent` = monitored time not offline (ok or degraded) / monitored
  time; `monitored_percent` = monitored time / elapsed time of the month.
  An endpoint never monitored in the month has `online_percent` null.

Attendance comes from the `attendance` rows of the conferences that start in
the month (rows exist once a room opened: one per invited endpoint); an
endpoint attended when it joined at least once (an `endpoint.joined` event,
or joined now).

Call quality comes from the per-minute samples of the month (kept
`health_samples_days`, 35 days: older months have none). Each call minute
(a minute with call figures from the site's heartbeats or the bridge's view)
gives one value per figure: the worse of the site's and the bridge's mean for
that minute (the higher loss, round-trip time and jitter, the lower frame
rate), as the health model judges. Over the month's call minutes the report
gives the mean and the 95th percentile of loss, round-trip time and jitter
(the value 95 % of call minutes stayed under) and, for the frame rate, the
mean and the 5th percentile (the rate 95 % of call minutes reached). The
percentiles are over minutes, nearest rank: per-minute sums are what the
processes add up exactly (an upsert per minute and endpoint), and a minute is
short enough that a bad stretch of a meeting shows in the tail."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from monitoring import responses
from monitoring.health.model import HealthState
from monitoring.health.store import EndpointInfo
from vcbridge.core.db.models import (
    Attendance,
    Conference,
    Endpoint,
    Event,
    HealthSample,
    HealthTransition,
)
from vcbridge.core.event_types import EventType

MONTH_PATTERN = re.compile(r"^([0-9]{4})-([0-9]{2})$")  # ASCII digits only
JOINED = "joined"  # scheduler.connect_policy.ConnectState.JOINED (a stored column value)
# Sample rows read at a time for the quality columns (the loop gets a turn after each).
QUALITY_CHUNK = 5000


class BadMonth(ValueError):
    """The month is not YYYY-MM, or has not begun."""


def month_bounds(text: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The first instant of the month and of the next, in UTC, from 'YYYY-MM' in `zone`."""
    match = MONTH_PATTERN.match(text)
    if match is None:
        raise BadMonth("month must be YYYY-MM, e.g. 2026-11")
    year, month = int(match[1]), int(match[2])
    if not 1 <= month <= 12:
        raise BadMonth("month must be between 01 and 12")
    if not 2000 <= year <= 2200:
        raise BadMonth("year must be between 2000 and 2200")
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class Uptime:
    """Seconds of one endpoint's time within a period, by what was known."""

    monitored: float = 0.0
    offline: float = 0.0
    degraded: float = 0.0

    @property
    def online(self) -> float:
        return self.monitored - self.offline

    def online_percent(self) -> float | None:
        return None if self.monitored <= 0 else 100.0 * self.online / self.monitored


def uptime(initial: str | None, transitions: Sequence[tuple[datetime, str]],
           start: datetime, end: datetime) -> Uptime:
    """Time in each state over [start, end).

    `initial` is the state at `start` (from the last transition before it),
    None when the endpoint had none (not monitored yet); `transitions` are
    the (time, new state) changes within the period, oldest first."""
    totals: dict[str, float] = defaultdict(float)
    state, since = initial, start
    for at, new in sorted(transitions, key=lambda t: t[0]):
        at = min(max(at, start), end)
        if state is not None:
            totals[state] += (at - since).total_seconds()
        state, since = new, at
    if state is not None and end > since:
        totals[state] += (end - since).total_seconds()
    return Uptime(
        monitored=sum(totals.values()),
        offline=totals[HealthState.OFFLINE.value],
        degraded=totals[HealthState.DEGRADED.value],
    )


@dataclass(frozen=True)
class Quality:
    """The month's call minutes: means and tails (None: nothing measured)."""

    rtt_ms: float | None = None
    jitter_ms: float | None = None
    packet_loss_ratio: float | None = None
    fps: float | None = None
    p95_rtt_ms: float | None = None
    p95_jitter_ms: float | None = None
    p95_packet_loss_ratio: float | None = None
    p5_fps: float | None = None
    call_minutes: int = 0


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (`share` 0..1) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(share * len(ordered)), 1)
    return ordered[rank - 1]


def _minute_mean(total: float, count: int) -> float | None:
    return total / count if count else None


@dataclass
class _Minutes:
    """One endpoint's call minutes: the judged (worse-of) value of each figure."""

    rtt: list[float] = field(default_factory=list)
    jitter: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    fps: list[float] = field(default_factory=list)
    count: int = 0

    def add(self, site: Sequence[float | None], bridge: Sequence[float | None]) -> None:
        """One minute: (rtt, jitter, loss, fps) means of each side (None: not measured)."""
        self.count += 1
        for values, a, b, low_is_bad in zip(
                (self.rtt, self.jitter, self.loss, self.fps), site, bridge,
                (False, False, False, True), strict=True):
            known = [v for v in (a, b) if v is not None]
            if known:
                values.append(min(known) if low_is_bad else max(known))

    def quality(self) -> Quality:
        def mean(values: list[float]) -> float | None:
            return sum(values) / len(values) if values else None

        return Quality(
            rtt_ms=mean(self.rtt), jitter_ms=mean(self.jitter),
            packet_loss_ratio=mean(self.loss), fps=mean(self.fps),
            p95_rtt_ms=percentile(self.rtt, 0.95), p95_jitter_ms=percentile(self.jitter, 0.95),
            p95_packet_loss_ratio=percentile(self.loss, 0.95),
            p5_fps=percentile(self.fps, 0.05), call_minutes=self.count)


@dataclass(frozen=True)
class EndpointAvailability:
    endpoint: EndpointInfo
    uptime: Uptime
    invited: int
    attended: int
    quality: Quality


@dataclass(frozen=True)
class AvailabilityReport:
    month: str
    start: datetime
    end: datetime  # the end of the elapsed part (now, for the current month)
    month_end: datetime
    rows: tuple[EndpointAvailability, ...]

    @property
    def elapsed(self) -> float:
        return (self.end - self.start).total_seconds()


async def _uptimes(session: AsyncSession, start: datetime, end: datetime
                   ) -> dict[int, Uptime]:
    last_before = (
        select(HealthTransition.endpoint_id, func.max(HealthTransition.at).label("at"))
        .where(HealthTransition.at < start).group_by(HealthTransition.endpoint_id).subquery()
    )
    initial: dict[int, str] = {}
    rows = await session.execute(
        select(HealthTransition.endpoint_id, HealthTransition.state)
        .join(last_before, (last_before.c.endpoint_id == HealthTransition.endpoint_id)
              & (last_before.c.at == HealthTransition.at))
        .order_by(HealthTransition.id)
    )
    for endpoint_id, state in rows:
        initial[endpoint_id] = state  # ties: the last written wins
    within: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    changes = await session.execute(
        select(HealthTransition.endpoint_id, HealthTransition.at, HealthTransition.state)
        .where(HealthTransition.at >= start, HealthTransition.at < end)
        .order_by(HealthTransition.endpoint_id, HealthTransition.at, HealthTransition.id)
    )
    for endpoint_id, at, state in changes:
        within[endpoint_id].append((at, state))
    return {
        endpoint_id: uptime(initial.get(endpoint_id), within.get(endpoint_id, []), start, end)
        for endpoint_id in set(initial) | set(within)
    }


async def _attendance(session: AsyncSession, start: datetime, end: datetime
                      ) -> tuple[dict[int, int], dict[int, int]]:
    in_month = (Conference.start >= start) & (Conference.start < end)
    rows = (await session.execute(
        select(Attendance.conference_id, Attendance.endpoint_id, Attendance.state,
               Endpoint.code)
        .join(Conference, Conference.id == Attendance.conference_id)
        .join(Endpoint, Endpoint.id == Attendance.endpoint_id)
        .where(in_month)
    )).all()
    joined = {(conference_id, code) for conference_id, code in await session.execute(
        select(Event.conference_id, Event.endpoint_code)
        .join(Conference, Conference.id == Event.conference_id)
        .where(in_month, Event.type == EventType.ENDPOINT_JOINED)
    )}
    invited: dict[int, int] = defaultdict(int)
    attended: dict[int, int] = defaultdict(int)
    for conference_id, endpoint_id, state, code in rows:
        invited[endpoint_id] += 1
        if state == JOINED or (conference_id, code) in joined:
            attended[endpoint_id] += 1
    return invited, attended


async def _quality(session: AsyncSession, start: datetime, end: datetime
                   ) -> dict[int, Quality]:
    s = HealthSample
    site = (s.rtt_sum, s.rtt_n, s.jitter_sum, s.jitter_n, s.loss_sum, s.loss_n,
            s.fps_sum, s.fps_n)
    bridge = (s.bridge_rtt_sum, s.bridge_rtt_n, s.bridge_jitter_sum, s.bridge_jitter_n,
              s.bridge_loss_sum, s.bridge_loss_n, s.bridge_fps_sum, s.bridge_fps_n)
    in_call = or_(s.in_call > 0, *(column > 0 for column in bridge[1::2]))
    query = (select(s.endpoint_id, *site, *bridge)
             .where(s.minute >= start, s.minute < end, in_call)
             .execution_options(yield_per=QUALITY_CHUNK))
    minutes: dict[int, _Minutes] = defaultdict(_Minutes)
    result = await session.stream(query)
    async for chunk in result.partitions():
        for endpoint_id, *sums in chunk:
            means = [_minute_mean(sums[i], sums[i + 1]) for i in range(0, len(sums), 2)]
            minutes[endpoint_id].add(means[:4], means[4:])
        await asyncio.sleep(0)  # a province's month is many rows: let others run between
    return {endpoint_id: m.quality() for endpoint_id, m in minutes.items()}


async def build_report(session: AsyncSession, month: str, zone: ZoneInfo, now: datetime,
                       endpoints: Iterable[EndpointInfo]) -> AvailabilityReport:
    """The report of `month` ('YYYY-MM') for `endpoints`; BadMonth if it has not begun."""
    start, month_end = month_bounds(month, zone)
    if now <= start:
        raise BadMonth(f"{month} has not begun")
    end = min(now, month_end)
    uptimes = await _uptimes(session, start, end)
    invited, attended = await _attendance(session, start, month_end)
    quality = await _quality(session, start, month_end)
    rows = tuple(
        EndpointAvailability(e, uptimes.get(e.id, Uptime()), invited.get(e.id, 0),
                             attended.get(e.id, 0), quality.get(e.id, Quality()))
        for e in endpoints
    )
    return AvailabilityReport(month, start, end, month_end, rows)


def current_month(now: datetime, zone: ZoneInfo) -> str:
    return now.astimezone(zone).strftime("%Y-%m")


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def row_of(row: EndpointAvailability, elapsed: float) -> responses.AvailabilityRow:
    """One endpoint's month as the report shows it (JSON and CSV alike)."""
    up, q = row.uptime, row.quality
    return responses.AvailabilityRow(
        code=row.endpoint.code,
        name=row.endpoint.name,
        online_percent=_round(up.online_percent(), 3),
        offline_minutes=round(up.offline / 60, 1),
        degraded_minutes=round(up.degraded / 60, 1),
        monitored_percent=round(100.0 * up.monitored / elapsed, 3) if elapsed > 0 else 0.0,
        conferences_invited=row.invited,
        conferences_attended=row.attended,
        attendance_percent=_round(100.0 * row.attended / row.invited if row.invited else None,
                                  1),
        mean_rtt_ms=_round(q.rtt_ms, 1),
        p95_rtt_ms=_round(q.p95_rtt_ms, 1),
        mean_jitter_ms=_round(q.jitter_ms, 1),
        p95_jitter_ms=_round(q.p95_jitter_ms, 1),
        mean_packet_loss_percent=_percent(q.packet_loss_ratio),
        p95_packet_loss_percent=_percent(q.p95_packet_loss_ratio),
        mean_fps=_round(q.fps, 1),
        p5_fps=_round(q.p5_fps, 1),
        call_minutes=q.call_minutes,
    )


def _percent(ratio: float | None) -> float | None:
    return None if ratio is None else round(100 * ratio, 3)


CSV_COLUMNS = ("code", "name", "online_percent", "offline_minutes", "degraded_minutes",
               "monitored_percent", "conferences_invited", "conferences_attended",
               "attendance_percent", "mean_rtt_ms", "p95_rtt_ms", "mean_jitter_ms",
               "p95_jitter_ms", "mean_packet_loss_percent", "p95_packet_loss_percent",
               "mean_fps", "p5_fps", "call_minutes")


# The spreadsheet form for offices in Vietnam (`lang=vi`): Vietnamese column names, a
# decimal comma and `;` between fields. Excel on Windows with Vietnamese regional
# settings (decimal symbol ",", list separator ";") opens it into columns with
# numbers it can sum; a `,`-separated file with decimal points lands there as text.
CSV_HEADERS_VI = {
    "code": "Mã điểm cầu",
    "name": "Tên điểm cầu",
    "online_percent": "Tỷ lệ trực tuyến (%)",
    "offline_minutes": "Mất kết nối (phút)",
    "degraded_minutes": "Suy giảm (phút)",
    "monitored_percent": "Thời gian được giám sát (%)",
    "conferences_invited": "Số hội nghị được mời",
    "conferences_attended": "Số hội nghị đã tham dự",
    "attendance_percent": "Tỷ lệ tham dự (%)",
    "mean_rtt_ms": "Độ trễ khứ hồi trung bình (ms)",
    "p95_rtt_ms": "Độ trễ khứ hồi P95 (ms)",
    "mean_jitter_ms": "Độ biến động trễ trung bình (ms)",
    "p95_jitter_ms": "Độ biến động trễ P95 (ms)",
    "mean_packet_loss_percent": "Tỷ lệ mất gói trung bình (%)",
    "p95_packet_loss_percent": "Tỷ lệ mất gói P95 (%)",
    "mean_fps": "Khung hình/giây trung bình",
    "p5_fps": "Khung hình/giây P5 (95 % số phút đạt)",
    "call_minutes": "Số phút trong hội nghị",
}
CSV_LANGUAGES = ("en", "vi")


def _cell(value: Any, decimal_comma: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = repr(value)  # the shortest exact form: 99.5, never 9.95e1 for these figures
        return text.replace(".", ",") if decimal_comma else text
    return str(value)


def to_csv(report: AvailabilityReport, lang: str = "en") -> bytes:
    """RFC 4180 CSV with a header row, UTF-8 with a BOM (Excel then reads the
    Vietnamese names right); empty cells where a figure is unknown.

    `lang="en"`: the API's field names, decimal points, `,` between fields (for
    scripts, and spreadsheets set to English). `lang="vi"`: for spreadsheets in
    Vietnam, Vietnamese column names, decimal commas, `;` between fields."""
    vietnamese = lang == "vi"
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n", delimiter=";" if vietnamese else ",")
    writer.writerow([CSV_HEADERS_VI[c] for c in CSV_COLUMNS] if vietnamese else CSV_COLUMNS)
    for row in report.rows:
        values = row_of(row, report.elapsed).model_dump()
        writer.writerow([_cell(values[c], vietnamese) for c in CSV_COLUMNS])
    return "\ufeff".encode() + out.getvalue().encode()


def csv_filename(report: AvailabilityReport, lang: str = "en") -> str:
    """The download's file name (ASCII)."""
    stem = "bao-cao-kha-dung" if lang == "vi" else "availability"
    return f"{stem}-{report.month}.csv"


def month_span_text(report: AvailabilityReport, zone: ZoneInfo) -> tuple[str, str]:
    return (report.start.astimezone(zone).isoformat(timespec="seconds"),
            report.end.astimezone(zone).isoformat(timespec="seconds"))

