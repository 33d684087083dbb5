"""The monthly availability report, on a constructed history with known times."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from monitoring.health.availability import BadMonth, Uptime, month_bounds, percentile, uptime
from tests.conftest import NOW, Client
from tests.health_support import health_settings
from vcbridge.core.app_keys import DATABASE, EVENT_BUS
from vcbridge.core.db.models import (
    Attendance,
    Conference,
    ConferenceStatus,
    Endpoint,
    HealthSample,
    HealthTransition,
    Participant,
)
from vcbridge.core.settings import Settings

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
HOUR = 3600.0
MONTH_START = datetime(2026, 11, 1, tzinfo=ZONE)
# NOW is 2026-11-27 10:00 in Hanoi: 26 days and 10 hours of November have passed.
ELAPSED = 634 * HOUR
TINH, NGA_SON, MUONG_LAT, QUAN_SON = "UBND-TINH", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT", (
    "HUYEN-QUAN-SON")


def local(day: int, hour: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=ZONE)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return health_settings(database_url, tmp_path)


# -- pure ------------------------------------------------------------------------------------


def test_month_bounds_in_the_province_zone() -> None:
    start, end = month_bounds("2026-11", ZONE)
    assert start == datetime(2026, 10, 31, 17, tzinfo=UTC)
    assert end == datetime(2026, 11, 30, 17, tzinfo=UTC)
    assert month_bounds("2026-12", ZONE)[1] == datetime(2026, 12, 31, 17, tzinfo=UTC)
    for bad in ("2026-13", "2026-00", "2026-1", "26-11", "2026/11", "", "1999-12", "2026-11 "):
        with pytest.raises(BadMonth):
            month_bounds(bad, ZONE)


def test_percentiles_are_nearest_rank() -> None:
    minutes = [float(v) for v in range(1, 101)]  # 1 .. 100
    assert percentile(minutes, 0.95) == 95 and percentile(minutes, 0.05) == 5
    assert percentile([7.0], 0.95) == 7 and percentile([7.0], 0.05) == 7
    assert percentile([3.0, 1.0, 2.0], 0.95) == 3  # of three minutes: the worst
    assert percentile([], 0.95) is None


def test_uptime_walks_the_transitions() -> None:
    start, end = local(1, 0), local(2, 0)  # one day
    assert uptime(None, [], start, end) == Uptime()
    assert uptime("ok", [], start, end) == Uptime(monitored=24 * HOUR)
    day = uptime("ok", [(local(1, 6), "offline"), (local(1, 9), "degraded"),
                        (local(1, 10), "ok")], start, end)
    assert day == Uptime(monitored=24 * HOUR, offline=3 * HOUR, degraded=HOUR)
    assert day.online_percent() == pytest.approx(87.5)
    # First heartbeat at 12:00: the morning is not monitored.
    late = uptime(None, [(local(1, 12), "ok"), (local(1, 18), "offline")], start, end)
    assert late == Uptime(monitored=12 * HOUR, offline=6 * HOUR)
    assert late.online_percent() == 50
    assert Uptime().online_percent() is None
    assert uptime("offline", [], start, end).online_percent() == 0


# -- the report through the API ------------------------------------------------------------


async def _ids(client: Client) -> dict[str, int]:
    async with client.app[DATABASE].read() as session:
        rows = await session.execute(select(Endpoint.code, Endpoint.id))
        return {code: endpoint_id for code, endpoint_id in rows}


def _conference(ids: dict[str, int], start: datetime, codes: list[str]) -> Conference:
    return Conference(
        title="Giao ban", chair_endpoint_id=ids[codes[0]], start=start,
        end=start + timedelta(hours=2), setup_minutes=15,
        busy_start=start - timedelta(minutes=15), status=ConferenceStatus.ENDED,
        created_at=NOW - timedelta(days=60), created_by="test", updated_at=NOW,
        updated_by="test", participants=[Participant(endpoint_id=ids[c]) for c in codes],
    )


async def _history(client: Client) -> None:
    """A known November: see each endpoint's comment for its expected figures."""
    ids = await _ids(client)

    def change(code: str, at: datetime, state: str) -> HealthTransition:
        return HealthTransition(endpoint_id=ids[code], at=at, state=state, reasons=[])

    async with client.app[DATABASE].write() as session:
        session.add_all([
            # UBND-TINH: monitored since October; offline 6 h on the 10th, degraded 2 h on
            # the 20th: 628/634 h on line.
            change(TINH, local(20, 9, month=10), "ok"),
            change(TINH, local(10, 0), "offline"),
            change(TINH, local(10, 6), "ok"),
            change(TINH, local(20, 8), "degraded"),
            change(TINH, local(20, 10), "ok"),
            # Nga Son: first heartbeat on the 20th at 10:00 (7 days ago), offline since the
            # 25th at 10:00: 120 of 168 monitored hours on line.
            change(NGA_SON, local(20, 10), "ok"),
            change(NGA_SON, local(25, 10), "offline"),
            # Quan Son: went offline in October and never came back: 0 %.
            change(QUAN_SON, local(1, 0, month=10), "ok"),
            change(QUAN_SON, local(15, 0, month=10), "offline"),
            # Muong Lat: never sent a heartbeat: no figure.
        ])
        first = _conference(ids, local(5, 8), [TINH, NGA_SON, MUONG_LAT])
        second = _conference(ids, local(12, 8), [TINH, QUAN_SON])
        october = _conference(ids, local(30, 8, month=10), [TINH, NGA_SON])
        december = _conference(ids, local(1, 0, month=12) + timedelta(minutes=30),
                               [TINH, NGA_SON])
        session.add_all([first, second, october, december])
        await session.flush()

        def row(conference: Conference, code: str, state: str) -> Attendance:
            return Attendance(conference_id=conference.id, endpoint_id=ids[code], state=state,
                              attempts=1, last_change=conference.end, reason=state)

        session.add_all([
            row(first, TINH, "left"), row(first, NGA_SON, "left"), row(first, MUONG_LAT, "joined"),
            row(second, TINH, "left"), row(second, QUAN_SON, "absent"),
            row(october, TINH, "left"), row(october, NGA_SON, "left"),
            row(december, TINH, "left"), row(december, NGA_SON, "left"),
        ])
        bus = client.app[EVENT_BUS]
        for conference, code in ((first, TINH), (second, TINH), (october, NGA_SON),
                                 (december, NGA_SON)):
            await bus.publish(session, "endpoint.joined", conference.start,
                              conference_id=conference.id, endpoint=code, audience=[code])

        def sample(code: str, minute: datetime, site_rtt: float, site_loss: float,
                   **bridge: float) -> HealthSample:
            """Ten heartbeats in a call (jitter 5 ms, 25 fps), and six windows of the
            bridge's view when given (its mean figures by column prefix)."""
            row = HealthSample(endpoint_id=ids[code], minute=minute, heartbeats=12,
                               in_call=10, degraded=0, rtt_sum=10 * site_rtt, rtt_n=10,
                               jitter_sum=50.0, jitter_n=10, loss_sum=10 * site_loss,
                               loss_n=10,
                               fps_sum=250.0, fps_n=10)
            for name, mean in bridge.items():
                setattr(row, f"bridge_{name}_sum", 6 * mean)
                setattr(row, f"bridge_{name}_n", 6)
            return row

        # Ubnd-Tinh's three call minutes, judged on the worse of the two views:
        #   08:00  site rtt 40, loss 1 %, jitter 5, 25 fps; bridge 42 ms, 0.5 %, 3 ms, 20 fps
        #          -> 42 ms, 1 %, 5 ms, 20 fps
        #   09:00  site only: 60 ms, 3 %, 5 ms, 25 fps
        #   09:01  the bridge only (the agent sent no call figures): 90 ms, 8 %, 12 ms, 6 fps
        # Means 64 ms, 4 %, 7.3 ms, 17 fps; 95th percentile (of 3: the worst) 90 ms, 8 %,
        # 12 ms; 5th percentile of the frame rate 6 fps.
        bridge_only = HealthSample(endpoint_id=ids[TINH], minute=local(5, 9) + timedelta(
            minutes=1), heartbeats=0, in_call=0, degraded=0)
        for name, mean in (("rtt", 90.0), ("loss", 0.08), ("jitter", 12.0), ("fps", 6.0)):
            setattr(bridge_only, f"bridge_{name}_sum", 6 * mean)
            setattr(bridge_only, f"bridge_{name}_n", 6)
        session.add_all([
            sample(TINH, local(5, 8), 40.0, 0.01, rtt=42.0, loss=0.005, jitter=3.0, fps=20.0),
            sample(TINH, local(5, 9), 60.0, 0.03),
            bridge_only,
            sample(TINH, local(31, 23, month=10), 900.0, 0.5),  # October: left out
            HealthSample(endpoint_id=ids[NGA_SON], minute=local(21, 9), heartbeats=12),
        ])


async def _report(client: Client, headers: dict[str, str], query: str = "month=2026-11"
                  ) -> dict[str, Any]:
    response = await client.get(f"/api/v1/reports/availability?{query}", headers=headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_availability_numbers(client: Client, admin: dict[str, str]) -> None:
    await _history(client)
    body = await _report(client, admin)
    assert body["month"] == "2026-11"
    assert body["from"] == "2026-11-01T00:00:00+07:00"
    assert body["to"] == "2026-11-27T10:00:00+07:00"
    assert body["elapsed_seconds"] == ELAPSED
    rows = {r["code"]: r for r in body["endpoints"]}
    assert len(rows) == 31

    tinh = rows[TINH]
    assert tinh["online_percent"] == round(100 * 628 / 634, 3)
    assert tinh["offline_minutes"] == 360 and tinh["degraded_minutes"] == 120
    assert tinh["monitored_percent"] == 100
    assert (tinh["conferences_invited"], tinh["conferences_attended"]) == (2, 2)
    assert tinh["attendance_percent"] == 100
    assert (tinh["mean_rtt_ms"], tinh["p95_rtt_ms"]) == (64, 90)
    assert (tinh["mean_jitter_ms"], tinh["p95_jitter_ms"]) == (7.3, 12)
    assert (tinh["mean_packet_loss_percent"], tinh["p95_packet_loss_percent"]) == (4, 8)
    assert (tinh["mean_fps"], tinh["p5_fps"]) == (17, 6)
    assert tinh["call_minutes"] == 3

    nga_son = rows[NGA_SON]
    assert nga_son["online_percent"] == round(100 * 120 / 168, 3)
    assert nga_son["offline_minutes"] == 48 * 60
    assert nga_son["monitored_percent"] == round(100 * 168 / 634, 3)
    # Invited once in November and never joined (October and December do not count).
    assert (nga_son["conferences_invited"], nga_son["conferences_attended"]) == (1, 0)
    assert nga_son["attendance_percent"] == 0
    assert nga_son["mean_rtt_ms"] is None and nga_son["call_minutes"] == 0

    quan_son = rows[QUAN_SON]
    assert quan_son["online_percent"] == 0 and quan_son["monitored_percent"] == 100
    assert (quan_son["conferences_invited"], quan_son["conferences_attended"]) == (1, 0)

    muong_lat = rows[MUONG_LAT]
    assert muong_lat["online_percent"] is None and muong_lat["monitored_percent"] == 0
    # Joined now (no event needed).
    assert (muong_lat["conferences_invited"], muong_lat["conferences_attended"]) == (1, 1)

    untouched = rows["HUYEN-BA-THUOC"]
    assert untouched["online_percent"] is None and untouched["conferences_invited"] == 0
    assert untouched["attendance_percent"] is None

    # October: a whole month; Quan Son went offline on the 15th at 00:00.
    october = {r["code"]: r for r in (await _report(client, admin, "month=2026-10"))["endpoints"]}
    assert october["HUYEN-QUAN-SON"]["online_percent"] == round(100 * 14 / 31, 3)
    assert october[TINH]["monitored_percent"] == round(100 * (11 * 24 + 15) / (31 * 24), 3)
    assert october[NGA_SON]["conferences_attended"] == 1


async def test_availability_csv(client: Client, admin: dict[str, str]) -> None:
    await _history(client)
    for headers, query in ((admin, "month=2026-11&format=csv"),
                           (admin | {"Accept": "text/csv"}, "month=2026-11")):
        response = await client.get(f"/api/v1/reports/availability?{query}", headers=headers)
        assert response.status == 200
        assert response.content_type == "text/csv" and response.charset == "utf-8"
        assert response.headers["Content-Disposition"] == (
            'attachment; filename="availability-2026-11.csv"')
        raw = await response.read()
        assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for UTF-8
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
        assert len(rows) == 31
        assert list(rows[0]) == [
            "code", "name", "online_percent", "offline_minutes", "degraded_minutes",
            "monitored_percent", "conferences_invited", "conferences_attended",
            "attendance_percent", "mean_rtt_ms", "p95_rtt_ms", "mean_jitter_ms",
            "p95_jitter_ms", "mean_packet_loss_percent", "p95_packet_loss_percent", "mean_fps",
            "p5_fps", "call_minutes"]
        by_code = {r["code"]: r for r in rows}
        assert by_code[NGA_SON]["name"] == "UBND huyện Nga Sơn"
        assert by_code[MUONG_LAT]["name"] == "UBND huyện Mường Lát"
        assert float(by_code[TINH]["online_percent"]) == round(100 * 628 / 634, 3)
        assert by_code[TINH]["mean_packet_loss_percent"] == "4.0"
        assert by_code[TINH]["p95_packet_loss_percent"] == "8.0"
        assert by_code[MUONG_LAT]["online_percent"] == ""  # unknown: an empty cell
        assert by_code[NGA_SON]["conferences_invited"] == "1"
    json_again = await client.get("/api/v1/reports/availability?month=2026-11",
                                  headers=admin | {"Accept": "text/csv, application/json"})
    assert json_again.content_type == "application/json"


async def test_availability_csv_for_spreadsheets_in_vietnam(client: Client,
                                                           admin: dict[str, str]) -> None:
    """`lang=vi`: Vietnamese column names, decimal commas, `;` between fields, the same
    figures as the English form."""
    await _history(client)
    response = await client.get("/api/v1/reports/availability?month=2026-11&format=csv&lang=vi",
                                headers=admin)
    assert response.status == 200 and response.content_type == "text/csv"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="bao-cao-kha-dung-2026-11.csv"')
    raw = await response.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    assert rows[0][:3] == ["Mã điểm cầu", "Tên điểm cầu", "Tỷ lệ trực tuyến (%)"]
    assert len(rows[0]) == 18 and len(rows) == 32
    by_code = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    tinh = by_code[TINH]
    expected = str(round(100 * 628 / 634, 3)).replace(".", ",")
    assert tinh["Tỷ lệ trực tuyến (%)"] == expected
    assert tinh["Tỷ lệ mất gói trung bình (%)"] == "4,0"
    assert tinh["Tỷ lệ mất gói P95 (%)"] == "8,0"
    assert by_code[MUONG_LAT]["Tỷ lệ trực tuyến (%)"] == ""
    assert by_code[NGA_SON]["Số hội nghị được mời"] == "1"
    assert by_code[NGA_SON]["Tên điểm cầu"] == "UBND huyện Nga Sơn"
    bad = await client.get("/api/v1/reports/availability?format=csv&lang=fr", headers=admin)
    assert bad.status == 422 and "lang" in (await bad.json())["error"]["message"]


async def test_bad_months_are_422(client: Client, admin: dict[str, str]) -> None:
    for query in ("month=2026-13", "month=2026-1", "month=november", "month=2026-11-01",
                  "month=1999-12", "month=2026-12", "month=2027-01",
                  "month=2026-11&format=xml"):
        response = await client.get(f"/api/v1/reports/availability?{query}", headers=admin)
        assert response.status == 422, query
        assert (await response.json())["error"]["code"] == "invalid"
    # No month: the current one.
    assert (await _report(client, admin, ""))["month"] == "2026-11"
